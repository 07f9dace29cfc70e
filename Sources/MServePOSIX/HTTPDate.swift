#if canImport(Glibc)
import Glibc
#endif

/// The Date header's text, formatted once per second.
public struct HTTPDate {
    public init() {}

    private var second = -1
    private var text: [UInt8] = []

    /// The current date in IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT").
    public mutating func current() -> [UInt8] {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        if ts.tv_sec != second {
            second = ts.tv_sec
            var t = time_t(ts.tv_sec)
            var tm = tm()
            gmtime_r(&t, &tm)
            var buf = [CChar](repeating: 0, count: 64)
            let n = strftime(&buf, buf.count, "%a, %d %b %Y %H:%M:%S GMT", &tm)
            text = buf[0..<n].map { UInt8(bitPattern: $0) }
        }
        return text
    }
}
