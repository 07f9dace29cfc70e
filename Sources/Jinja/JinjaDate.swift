#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A moment in UTC, for `strftime_now` (Llama 3.2's template puts today's date in its system turn).
public struct JinjaDate: Sendable, Equatable {
    public var year, month, day, hour, minute, second: Int

    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        (self.year, self.month, self.day, self.hour, self.minute, self.second) = (year, month, day, hour, minute, second)
    }

    public static func now() -> JinjaDate {
        var t = time(nil)
        var parts = tm()
        gmtime_r(&t, &parts)
        return JinjaDate(
            year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday),
            hour: Int(parts.tm_hour), minute: Int(parts.tm_min), second: Int(parts.tm_sec))
    }

    private static let months = [
        "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December"
    ]
    private static let weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

    /// Monday 0 ... Sunday 6 (Python's `weekday()`), by Sakamoto's method.
    private var weekday: Int {
        let offsets = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4]
        let y = month < 3 ? year - 1 : year
        let sunday0 = (y + y / 4 - y / 100 + y / 400 + offsets[month - 1] + day) % 7
        return (sunday0 + 6) % 7
    }

    /// Python's `strftime` for the C locale's directives chat templates use.
    public func format(_ pattern: String) -> String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var out = ""
        var percent = false
        for c in pattern {
            guard percent else {
                if c == "%" { percent = true } else { out.append(c) }
                continue
            }
            percent = false
            switch c {
            case "Y": out += String(year)
            case "y": out += two(year % 100)
            case "m": out += two(month)
            case "d": out += two(day)
            case "H": out += two(hour)
            case "M": out += two(minute)
            case "S": out += two(second)
            case "B": out += JinjaDate.months[month - 1]
            case "b": out += String(JinjaDate.months[month - 1].prefix(3))
            case "A": out += JinjaDate.weekdays[weekday]
            case "a": out += String(JinjaDate.weekdays[weekday].prefix(3))
            case "%": out += "%"
            default: out += "%" + String(c)
            }
        }
        return out
    }
}
