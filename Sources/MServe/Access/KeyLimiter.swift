import MServePOSIX

/// Per-key limits and counts shared by every worker, in memory the master maps before its first
/// fork (as the scoreboard is).  Each key has a slot, given by the master by name and kept across
/// reloads: its rate word (RateLimit's TAT), its requests in flight over all workers, and its
/// counts.  Each worker also counts its own requests in flight per key, so that when a worker dies
/// the master takes exactly those back and a crash leaks nothing.
public final class KeyLimiter: @unchecked Sendable {
    public static let maxKeys = 1024
    static let maxWorkers = Scoreboard.maxRecords
    static let nameBytes = 64

    enum Layout {
        static let count = 0
        static let names = 1
        static let keyWords = 5
        static let keys = names + maxKeys * nameBytes / 8
        // Per key:
        static let tat = 0, inFlight = 1, requests = 2, refusedRate = 3, refusedInFlight = 4
        static let workers = keys + maxKeys * keyWords
        static let size = workers + maxWorkers * maxKeys
    }

    private let memory: SharedMemory
    private let base: UnsafeMutablePointer<UInt64>

    public init() throws {
        memory = try SharedMemory(size: Layout.size * 8)
        base = memory.base.bindMemory(to: UInt64.self, capacity: Layout.size)
    }

    private func key(_ slot: Int) -> UnsafeMutablePointer<UInt64> { base + Layout.keys + slot * Layout.keyWords }
    private func own(_ record: Int, _ slot: Int) -> UnsafeMutablePointer<UInt64> { base + Layout.workers + record * KeyLimiter.maxKeys + slot }

    // MARK: master

    /// The keys with their slots (a name seen before keeps its slot, and its counts); beyond
    /// `maxKeys` names a key has none and goes unlimited and uncounted.
    public func assignSlots(_ keys: [APIKey]) -> [APIKey] {
        keys.map { k in
            var k = k
            k.slot = slot(named: k.name)
            return k
        }
    }

    private func slot(named name: String) -> Int? {
        let names = self.names
        if let i = names.firstIndex(of: name) { return i }
        guard names.count < KeyLimiter.maxKeys else { return nil }
        let p = UnsafeMutableRawPointer(base + Layout.names).advanced(by: names.count * KeyLimiter.nameBytes)
        let bytes = Array(name.utf8.prefix(KeyLimiter.nameBytes - 1))
        p.initializeMemory(as: UInt8.self, repeating: 0, count: KeyLimiter.nameBytes)
        p.copyMemory(from: bytes, byteCount: bytes.count)
        base[Layout.count] = UInt64(names.count + 1)
        return names.count
    }

    var names: [String] {
        (0..<Int(min(base[Layout.count], UInt64(KeyLimiter.maxKeys)))).map { i in
            let p = UnsafeRawPointer(base + Layout.names).advanced(by: i * KeyLimiter.nameBytes).assumingMemoryBound(to: UInt8.self)
            return String(decoding: UnsafeBufferPointer(start: p, count: (0..<KeyLimiter.nameBytes).first { p[$0] == 0 } ?? KeyLimiter.nameBytes), as: UTF8.self)
        }
    }

    /// A worker is gone: what it had in flight is no longer.
    public func releaseWorker(_ record: Int) {
        for slot in 0..<Int(min(base[Layout.count], UInt64(KeyLimiter.maxKeys))) {
            let n = own(record, slot).pointee
            if n > 0 { SharedAtomic.add(key(slot) + Layout.inFlight, -Int64(n)) }
            own(record, slot).pointee = 0
        }
    }

    // MARK: worker

    public enum Outcome: Equatable, Sendable { case admitted, overRate(retryAfter: Int), overInFlight }

    /// Admits one request of `key` from the worker with scoreboard record `record`, or says which
    /// limit it is over.  An admitted request must be `release`d.
    public func admit(_ k: APIKey, record: Int?, now: Double = monotonicSeconds()) -> Outcome {
        guard let slot = k.slot else { return .admitted }
        let words = key(slot)
        // Each word is changed by compare-and-swap: another worker's change in between means
        // deciding again on what it left.
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
        while true {
            let n = SharedAtomic.load(words + Layout.inFlight)
            if let most = k.maxInFlight, n >= UInt64(most) {
                SharedAtomic.add(words + Layout.refusedInFlight, 1)
                return .overInFlight
            }
            if SharedAtomic.compareExchange(words + Layout.inFlight, expected: n, desired: n + 1) { break }
        }
        if let record { SharedAtomic.add(own(record, slot), 1) }
        SharedAtomic.add(words + Layout.requests, 1)
        return .admitted
    }

    public func release(_ k: APIKey, record: Int?) {
        guard let slot = k.slot else { return }
        SharedAtomic.add(key(slot) + Layout.inFlight, -1)
        if let record { SharedAtomic.add(own(record, slot), -1) }
    }

    public func inFlight(_ slot: Int) -> UInt64 { SharedAtomic.load(key(slot) + Layout.inFlight) }

    /// Prometheus text: per key, requests admitted, refused by limit, and in flight.
    func prometheusText() -> String {
        let names = self.names
        guard !names.isEmpty else { return "" }
        var out = "# HELP mserve_key_requests_total Requests admitted, by API key name.\n# TYPE mserve_key_requests_total counter\n"
        for (i, n) in names.enumerated() { out += "mserve_key_requests_total{key=\"\(n)\"} \(SharedAtomic.load(key(i) + Layout.requests))\n" }
        out += "# HELP mserve_key_refused_total Requests refused with 429, by API key name and the limit they were over.\n# TYPE mserve_key_refused_total counter\n"
        for (i, n) in names.enumerated() {
            out += "mserve_key_refused_total{key=\"\(n)\",limit=\"rps\"} \(SharedAtomic.load(key(i) + Layout.refusedRate))\n"
            out += "mserve_key_refused_total{key=\"\(n)\",limit=\"in_flight\"} \(SharedAtomic.load(key(i) + Layout.refusedInFlight))\n"
        }
        out += "# HELP mserve_key_in_flight Requests in flight, by API key name, over all workers.\n# TYPE mserve_key_in_flight gauge\n"
        for (i, n) in names.enumerated() { out += "mserve_key_in_flight{key=\"\(n)\"} \(SharedAtomic.load(key(i) + Layout.inFlight))\n" }
        return out
    }
}
