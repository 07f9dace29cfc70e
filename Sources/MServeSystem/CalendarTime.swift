#if canImport(Glibc)
    import Glibc
#endif

/// A moment's calendar fields in UTC (gmtime_r), for formats that spell dates themselves.
public struct CalendarTime: Equatable, Sendable {
    public let year: Int
    /// 1...12
    public let month: Int
    public let day: Int
    /// 0 Sunday ... 6 Saturday
    public let weekday: Int
    public let hour: Int
    public let minute: Int
    public let second: Int

    /// `seconds` since the Unix epoch, in UTC.
    public init(utc seconds: Int) {
        var t = time_t(seconds)
        var fields = tm()
        gmtime_r(&t, &fields)
        year = Int(fields.tm_year) + 1900
        month = Int(fields.tm_mon) + 1
        day = Int(fields.tm_mday)
        weekday = Int(fields.tm_wday)
        hour = Int(fields.tm_hour)
        minute = Int(fields.tm_min)
        second = Int(fields.tm_sec)
    }
}
