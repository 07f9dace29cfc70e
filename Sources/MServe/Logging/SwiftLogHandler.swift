import Logging

/// The request a model thread is serving, for the log lines written while it does (a task-local
/// value, which synchronous code on a model thread sees too).
public struct ServingRequest: Sendable {
    public let recordID: String?
    public let model: String

    @TaskLocal public static var current: ServingRequest?
}

/// swift-log's `LogHandler`, bootstrapped in every mserve process: a model's (or any library's)
/// `Logging.Logger` lines land in the error log in mserve's format, at its level, with the recordid
/// of the request the model thread is serving and the model's name, so they read as Python
/// models' `print` and `logging` lines do.  Metadata follows the message as `key=value`.
public struct SwiftLogHandler: LogHandler {
    /// The process's error log: set in the master at start and inherited by its workers.
    static let sink = Locked<MServe.Logger?>(nil)
    private static let bootstrapped = Locked(false)

    public let label: String
    public var metadata: Logging.Logger.Metadata = [:]
    public var logLevel: Logging.Logger.Level = .trace

    public init(label: String) { self.label = label }

    /// Sends swift-log's lines to `logger` from now on (once per process; later calls only change
    /// where they go).
    public static func bootstrap(_ logger: MServe.Logger) {
        sink.withLock { $0 = logger }
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        if first { LoggingSystem.bootstrap { SwiftLogHandler(label: $0) } }
    }

    public subscript(metadataKey key: String) -> Logging.Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// swift-log's seven levels on mserve's five.
    static func level(_ l: Logging.Logger.Level) -> LogLevel {
        switch l {
        case .trace, .debug: .debug
        case .info, .notice: .info
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }

    public func log(event: LogEvent) {
        guard let sink = SwiftLogHandler.sink.withLock({ $0 }) else { return }
        let serving = ServingRequest.current
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        let (level, message) = (event.level, event.message)
        let recordID = all.removeValue(forKey: "recordid").map { "\($0)" } ?? serving?.recordID
        var text = "\(serving?.model ?? label): \(message)"
        for (k, v) in all.sorted(by: { $0.key < $1.key }) { text += " \(k)=\(v)" }
        sink.log(SwiftLogHandler.level(level), text, recordID: recordID)
    }
}
