#if canImport(Glibc)
    import Glibc
#endif

/// Timestamps for log lines.  Formatting a date is costly, so the text for the current second is
/// cached and only the milliseconds are added per line.
public struct LogClock {
    public init() {}

    private var cachedSecond: Int = -1
    private var errorPrefix: [UInt8] = []  // "2026-11-22 11:30:00"
    private var errorZone: [UInt8] = []  // " +0000"
    private var accessStamp: [UInt8] = []  // "22/Nov/2026:11:30:00 +0000"

    private mutating func refresh(_ second: Int) {
        guard second != cachedSecond else { return }
        cachedSecond = second
        var t = time_t(second)
        var tm = tm()
        localtime_r(&t, &tm)
        errorPrefix = Array(format(&tm, "%Y-%m-%d %H:%M:%S").utf8)
        errorZone = Array(format(&tm, " %z").utf8)
        accessStamp = Array(format(&tm, "%d/%b/%Y:%H:%M:%S %z").utf8)
    }

    private func format(_ tm: inout tm, _ f: String) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        let n = strftime(&buf, buf.count, f, &tm)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Wall-clock now (Unix seconds and nanoseconds).
    public static func now() -> (seconds: Int, nanoseconds: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (ts.tv_sec, ts.tv_nsec)
    }

    /// "2026-11-22 11:30:00.123 +0000", for now or for a time from `now()`.
    package mutating func appendErrorStamp(to out: inout ByteWriter, at time: (seconds: Int, nanoseconds: Int) = LogClock.now()) {
        let ts = time
        refresh(ts.seconds)
        out.append(contentsOf: errorPrefix)
        let ms = ts.nanoseconds / 1_000_000
        out.append(UInt8(ascii: "."))
        out.append(UInt8(48 + ms / 100))
        out.append(UInt8(48 + ms / 10 % 10))
        out.append(UInt8(48 + ms % 10))
        out.append(contentsOf: errorZone)
    }

    /// "22/Nov/2026:11:30:00 +0000", the Common Log Format's time.
    package mutating func appendAccessStamp(to out: inout ByteWriter) {
        refresh(LogClock.now().seconds)
        out.append(contentsOf: accessStamp)
    }
}
