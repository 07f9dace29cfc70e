import MServeSystem

/// The nonces of signed requests seen within the window, shared by every worker (memory the master
/// maps before its first fork), so that a request replayed to another worker is refused there too.
/// One 64-bit word per entry: 40 bits of the nonce's fingerprint and 24 of its expiry (Unix
/// seconds, modulo 2^24), claimed by compare-and-swap; an expired entry is free.  A million
/// entries (8 MB, touched as used): at 1,000 signed requests a second a 300-second window uses 30%;
/// beyond about 3,000 a second sustained, chains fill and requests get 503 until entries expire
/// (a shorter --signature-window makes room).
public final class NonceLog: @unchecked Sendable {
    static let bits = 20
    static let size = 1 << bits
    /// How far along its chain a nonce may land; beyond, the log is full there.
    static let probes = 32
    private let memory: SharedMemory
    private let words: UnsafeMutablePointer<UInt64>

    public init() throws {
        memory = try SharedMemory(size: NonceLog.size * 8)
        words = memory.base.bindMemory(to: UInt64.self, capacity: NonceLog.size)
    }

    public enum Outcome: Equatable, Sendable { case fresh, seen, full }

    /// Records `nonce` of `key` until `expiry` (Unix seconds), unless it is already there.
    public func remember(key: String, nonce: String, expiry: Int64, now: Int64) -> Outcome {
        let digest = Crypto.sha256(Array("\(key)\n\(nonce)".utf8))
        let h = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let fingerprint = max(1, h >> 24)
        let start = Int(truncatingIfNeeded: h) & (NonceLog.size - 1)
        let nowMod = UInt64(truncatingIfNeeded: now) & 0xFF_FFFF
        let entry = fingerprint << 24 | (UInt64(truncatingIfNeeded: expiry) & 0xFF_FFFF)
        func live(_ w: UInt64) -> Bool { w != 0 && ((w & 0xFF_FFFF) &- nowMod) & 0xFF_FFFF < 0x80_0000 }
        func slot(_ i: Int) -> UnsafeMutablePointer<UInt64> { words + ((start + i) & (NonceLog.size - 1)) }
        func seenElsewhere(than mine: Int?) -> Bool {
            (0..<NonceLog.probes).contains { i in
                let w = SharedAtomic.load(slot(i))
                return i != mine && live(w) && w >> 24 == fingerprint
            }
        }
        if seenElsewhere(than: nil) { return .seen }
        var i = 0
        while i < NonceLog.probes {
            let w = SharedAtomic.load(slot(i))
            if live(w) { i += 1; continue }
            guard SharedAtomic.compareExchange(slot(i), expected: w, desired: entry) else { continue }
            // Two workers given the same nonce at once both see the other's entry: both refuse.
            return seenElsewhere(than: i) ? .seen : .fresh
        }
        return .full
    }
}
