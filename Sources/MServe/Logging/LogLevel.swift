public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case debug = 10, info = 20, warning = 30, error = 40, critical = 50

    public init?(name: String) {
        switch name.lowercased() {
        case "debug": self = .debug
        case "info": self = .info
        case "warning", "warn": self = .warning
        case "error": self = .error
        case "critical": self = .critical
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .debug: return "DEBUG"
        case .info: return "INFO"
        case .warning: return "WARNING"
        case .error: return "ERROR"
        case .critical: return "CRITICAL"
        }
    }

    /// How a line of this level is marked, spaces and brackets included (one append per line).
    var tag: StaticString {
        switch self {
        case .debug: return " [DEBUG] "
        case .info: return " [INFO] "
        case .warning: return " [WARNING] "
        case .error: return " [ERROR] "
        case .critical: return " [CRITICAL] "
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}
