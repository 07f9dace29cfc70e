import MServeSystem

/// Per-key limits and counts shared by every worker, in memory the master maps before its first
/// fork (as the scoreboard is).  Each key has a slot, given by the master by name and kept across
/// reloads.  Each worker counts its own share of a key's requests in flight, so that when a worker
/// dies the master takes exactly those back and a crash leaks nothing.
public final class KeyLimiter: @unchecked Sendable {
    public static let maxKeys = 1024
    static let maxWorkers = Scoreboard.maxRecords

    /// Shared words are changed only for keys that have a limit; a key's counts and its requests
    /// in flight live in each worker's own words (one writer each, no contention between the
    /// workers' cores) and are summed when /metrics is read.
    enum Layout {
        static let count = 0
        static let names = 1
        static let keys = names + SharedNames.words(capacity: maxKeys)
        // Per key, shared: RateLimit's TAT, in flight of a key with in_flight=, refusals, and the
        // requests of workers that are gone.
        static let tat = 0, limitedInFlight = 1, refusedRate = 2, refusedInFlight = 3, retiredRequests = 4
        static let keyWords = 5
        static let workers = keys + maxKeys * keyWords
        // Per worker and key: in flight, of which counted in limitedInFlight, and requests.
        static let ownInFlight = 0, ownLimited = 1, ownRequests = 2
        static let ownWords = 3
        static let size = workers + maxWorkers * maxKeys * ownWords
    }

    private let memory: SharedMemory
    private let base: UnsafeMutablePointer<UInt64>

    public init() throws {
        memory = try SharedMemory(size: Layout.size * 8)
        base = memory.base.bindMemory(to: UInt64.self, capacity: Layout.size)
    }

    private var keyCount: Int { Int(min(base[Layout.count], UInt64(KeyLimiter.maxKeys))) }
    private func key(_ slot: Int) -> UnsafeMutablePointer<UInt64> { base + Layout.keys + slot * Layout.keyWords }
    private func own(_ record: Int, _ slot: Int) -> UnsafeMutablePointer<UInt64> {
        base + Layout.workers + (record * KeyLimiter.maxKeys + slot) * Layout.ownWords
    }

    // MARK: master

    /// The keys with their slots (a name seen before keeps its slot, and its counts); beyond
    /// `maxKeys` names a key has none and goes unlimited and uncounted.
    public func assignSlots(_ keys: [APIKey]) -> [APIKey] {
        var known = nameTable.names
        return keys.map { k in
            var k = k
            k.slot = nameTable.index(adding: k.name, known: &known)
            return k
        }
    }

    private var nameTable: SharedNames {
        SharedNames(count: base + Layout.count, slots: UnsafeMutableRawPointer(base + Layout.names), capacity: KeyLimiter.maxKeys)
    }

    var names: [String] { nameTable.names }

    /// A worker is gone: its requests in flight are no longer, its counts go to the retired ones.
    public func releaseWorker(_ record: Int) {
        for slot in 0..<keyCount {
            let mine = own(record, slot)
            if mine[Layout.ownLimited] > 0 { SharedAtomic.add(key(slot) + Layout.limitedInFlight, -Int64(mine[Layout.ownLimited])) }
            SharedAtomic.add(key(slot) + Layout.retiredRequests, Int64(mine[Layout.ownRequests]))
            mine.update(repeating: 0, count: Layout.ownWords)
        }
    }

    // MARK: worker

    public enum Outcome: Equatable, Sendable { case admitted, overRate(retryAfter: Int), overInFlight }

    /// Admits one request of `key` from the worker with scoreboard record `record`, or says which
    /// limit it is over.  An admitted request must be `release`d by the same worker.
    public func admit(_ k: APIKey, record: Int?, now: Double = monotonicSeconds()) -> Outcome {
        guard let slot = k.slot else { return .admitted }
        let words = key(slot)
        // Each shared word is changed by compare-and-swap: another worker's change in between
        // means deciding again on what it left.
        if let rps = k.rateLimit {
            let micros = UInt64(max(0, now * 1_000_000))
            rate: while true {
                let tat = SharedAtomic.load(words + Layout.tat)
                switch RateLimit.decide(tat: tat, now: micros, rps: rps) {
                case .refused(let after):
                    SharedAtomic.add(words + Layout.refusedRate, 1)
                    return .overRate(retryAfter: after)
                case .allowed(let next):
                    if SharedAtomic.compareExchange(words + Layout.tat, expected: tat, desired: next) { break rate }
                }
            }
        }
        if let most = k.maxInFlight {
            while true {
                let n = SharedAtomic.load(words + Layout.limitedInFlight)
                if n >= UInt64(most) {
                    SharedAtomic.add(words + Layout.refusedInFlight, 1)
                    return .overInFlight
                }
                if SharedAtomic.compareExchange(words + Layout.limitedInFlight, expected: n, desired: n + 1) { break }
            }
        }
        if let record {
            let mine = own(record, slot)
            mine[Layout.ownInFlight] += 1
            mine[Layout.ownRequests] += 1
            if k.maxInFlight != nil { mine[Layout.ownLimited] += 1 }
        }
        return .admitted
    }

    public func release(_ k: APIKey, record: Int?) {
        guard let slot = k.slot else { return }
        if k.maxInFlight != nil { SharedAtomic.add(key(slot) + Layout.limitedInFlight, -1) }
        guard let record else { return }
        let mine = own(record, slot)
        mine[Layout.ownInFlight] -= 1
        if k.maxInFlight != nil { mine[Layout.ownLimited] -= 1 }
    }

    /// A key's requests in flight over all workers.
    public func inFlight(_ slot: Int) -> UInt64 {
        (0..<KeyLimiter.maxWorkers).reduce(0) { $0 &+ own($1, slot)[Layout.ownInFlight] }
    }

    func requests(_ slot: Int) -> UInt64 {
        (0..<KeyLimiter.maxWorkers).reduce(SharedAtomic.load(key(slot) + Layout.retiredRequests)) { $0 &+ own($1, slot)[Layout.ownRequests] }
    }

    /// Prometheus text: per key, requests admitted, refused by limit, and in flight.
    func prometheusText() -> String {
        let names = self.names
        guard !names.isEmpty else { return "" }
        var out = "# HELP mserve_key_requests_total Requests admitted, by API key name.\n# TYPE mserve_key_requests_total counter\n"
        for (i, n) in names.enumerated() { out += "mserve_key_requests_total{key=\"\(n)\"} \(requests(i))\n" }
        out +=
            "# HELP mserve_key_refused_total Requests refused with 429, by API key name and the limit they were over.\n# TYPE mserve_key_refused_total counter\n"
        for (i, n) in names.enumerated() {
            out += "mserve_key_refused_total{key=\"\(n)\",limit=\"rps\"} \(SharedAtomic.load(key(i) + Layout.refusedRate))\n"
            out += "mserve_key_refused_total{key=\"\(n)\",limit=\"in_flight\"} \(SharedAtomic.load(key(i) + Layout.refusedInFlight))\n"
        }
        out += "# HELP mserve_key_in_flight Requests in flight, by API key name, over all workers.\n# TYPE mserve_key_in_flight gauge\n"
        for (i, n) in names.enumerated() { out += "mserve_key_in_flight{key=\"\(n)\"} \(inFlight(i))\n" }
        return out
    }
}
