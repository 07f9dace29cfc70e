import MServeSystem

/// The Date header's text, formatted once per second.  The names are spelled here, not by
/// strftime: the C locale's day and month names change if a model (a Python one) sets LC_TIME,
/// and HTTP's are English whatever the locale.
public struct HTTPDate {
    public init() {}

    private var second = -1
    private var text: [UInt8] = []

    /// The current date in IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT").
    public mutating func current() -> [UInt8] {
        let now = LogClock.now().seconds
        if now != second {
            second = now
            text = Array(HTTPDate.format(CalendarTime(utc: now)).utf8)
        }
        return text
    }

    static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func format(_ t: CalendarTime) -> String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[t.weekday]), \(two(t.day)) \(months[t.month - 1]) \(t.year) \(two(t.hour)):\(two(t.minute)):\(two(t.second)) GMT"
    }
}
