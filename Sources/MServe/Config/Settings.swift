/// Everything the master and its workers are configured with, after defaults, the config file and
/// the command line have been applied in that order.
public struct Settings: Sendable {
    public var models: [String] = []
    public var binds: [String] = ["127.0.0.1:8000"]
    public var workers = 1
    public var backlog = 2048
    public var gracefulTimeout = 30.0
    public var clientTimeout = 30.0
    public var maxBodySize = 10 * 1024 * 1024
    public var maxHeaderSize = 16 * 1024
    public var accessLogfile = "-"
    public var errorLogfile = "-"
    public var logLevel = LogLevel.info
    public var logBodyLimit = 1024
    public var pidfile: String? = nil
    public var config: String? = nil
    public var checkConfig = false
    /// `[model.NAME]` tables of the config file.
    public var modelSettings: [String: ModelSettings] = [:]

    public init() {}

    public func settings(forModel name: String) -> ModelSettings {
        modelSettings[name] ?? ModelSettings()
    }
}

/// Per-model settings from the config file's `[model.NAME]` table: `device`, and every other key
/// passed to the model as an option.
public struct ModelSettings: Sendable, Equatable {
    public var device = "cpu"
    public var options: [String: JSON] = [:]
    public init(device: String = "cpu", options: [String: JSON] = [:]) {
        self.device = device
        self.options = options
    }
}

/// A bad setting, named the way the user wrote it (flag or config key), with what is wrong.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
