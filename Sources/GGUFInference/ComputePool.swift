import Dispatch
import MServeSystem
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Threads that split the work of one product between them, for a forward pass that runs about
/// 200 products a token, each tens of microseconds long.  Handing each to GCD costs a sleep and
/// a wake-up per thread and product (a fifth of the time, measured); these helpers spin a little
/// while between products before they sleep, as llama.cpp's threads do.
public final class ComputePool: Sendable {
    /// The processors online (at most 8).
    public static let cores = max(1, min(8, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))

    /// Threads in all, the caller's included.
    public let threads: Int
    private let generation = Atomic<Int>(0)
    private let next = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let sleeping = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let job = Locked<Job?>(nil)
    private let wake = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)
    /// One product at a time.
    private let running = Locked<Void>(())

    /// The product being run: its body, and its iterations' range
    /// of the ever-growing `next` counter.  A helper late with an old job finds `next` past its
    /// end and takes nothing: no index of a later job is run with an earlier body.
    private struct Job: @unchecked Sendable {
        let start: Int
        let end: Int
        let body: (Int) -> Void
    }

    /// How long a waiting helper spins before it sleeps: longer than the serial work between
    /// two products of a step (norms, RoPE, quantizing an input: a few to tens of µs).  Counted
    /// in time, not iterations: 20,000 iterations were 50 µs on one CPU and 8 µs on another,
    /// where the helper then slept and was woken ~47 times a decode step (9% of its time).
    private static let spinNanoseconds: UInt64 = 100_000
    /// Iterations between two looks at the clock.
    private static let spinsPerLook = 512
    /// Looks at the clock between two offers of the core to another thread (`sched_yield`, a few
    /// µs apart): with more threads than cores (`-w 2`, each worker's pool as wide as the
    /// machine) a spinning helper otherwise holds a core another worker's thread is waiting for.
    private static let looksPerYield = 16

    /// Whether `waiting` is still true after spinning for up to `spinNanoseconds`.
    @inline(__always)
    private static func spin(while waiting: () -> Bool) -> Bool {
        var deadline: UInt64 = 0, looks = 0
        while waiting() {
            for _ in 0..<spinsPerLook where !waiting() { return false }
            looks += 1
            if looks % looksPerYield == 0 { sched_yield() }
            let now = DispatchTime.now().uptimeNanoseconds
            if deadline == 0 {
                deadline = now + spinNanoseconds
            } else if now > deadline {
                return true
            }
        }
        return false
    }

    /// Whether the helpers were started: with the first product, not with the pool, so that a
    /// model loaded before a fork (--preload) gets its threads in each worker.
    private let started = Atomic<Bool>(false)

    public init(threads: Int) {
        self.threads = max(1, threads)
    }

    private func startIfNeeded() {
        guard !started.load(ordering: .acquiring) else { return }
        started.store(true, ordering: .releasing)  // one caller at a time (`running`)
        for i in 1..<threads {
            DispatchQueue(label: "mserve.compute.\(i)").async { [self] in helper() }
        }
    }

    /// Stops the helpers (they exit at their next look).
    public func shutdown() {
        guard started.load(ordering: .acquiring) else { return }
        stopping.store(true, ordering: .sequentiallyConsistent)
        for _ in 1..<threads { wake.signal() }
        for _ in 1..<threads { exited.wait() }
    }

    /// `body(i)` for every i in 0..<iterations, spread over the pool's threads; returns when all
    /// are done.
    public func run(_ iterations: Int, _ body: @escaping (Int) -> Void) {
        guard threads > 1, iterations > 1 else {
            for i in 0..<iterations { body(i) }
            return
        }
        running.withLock { _ in
            startIfNeeded()
            do {
                let start = next.load(ordering: .sequentiallyConsistent)
                let j = Job(start: start, end: start + iterations, body: body)
                pending.store(iterations, ordering: .sequentiallyConsistent)
                job.withLock { $0 = j }
                generation.add(1, ordering: .sequentiallyConsistent)
                let asleep = sleeping.load(ordering: .sequentiallyConsistent)
                for _ in 0..<min(asleep, threads - 1) { wake.signal() }
                work(j)
                // A helper still at work after the spin was likely preempted: yield to it.
                if ComputePool.spin(while: { pending.load(ordering: .acquiring) > 0 }) {
                    while pending.load(ordering: .acquiring) > 0 { sched_yield() }
                }
                job.withLock { $0 = nil }
            }
        }
    }

    /// Takes the job's iterations until none are left.
    private func work(_ j: Job) {
        var i = next.load(ordering: .acquiring)
        while i < j.end {
            let (taken, current) = next.compareExchange(expected: i, desired: i + 1, ordering: .acquiringAndReleasing)
            if taken {
                j.body(i - j.start)
                pending.subtract(1, ordering: .releasing)
                i += 1
            } else {
                i = current
            }
        }
    }

    private func helper() {
        var seen = generation.load(ordering: .sequentiallyConsistent)
        while !stopping.load(ordering: .relaxed) {
            if ComputePool.spin(while: { generation.load(ordering: .acquiring) == seen }) {
                sleeping.add(1, ordering: .sequentiallyConsistent)
                if generation.load(ordering: .sequentiallyConsistent) == seen && !stopping.load(ordering: .sequentiallyConsistent) {
                    wake.wait()
                }
                sleeping.subtract(1, ordering: .sequentiallyConsistent)
                continue
            }
            seen = generation.load(ordering: .acquiring)
            // The job may be gone already (the caller did all of it): nothing to do then.
            guard let j = job.withLock({ $0 }) else { continue }
            work(j)
        }
        exited.signal()
    }
}
