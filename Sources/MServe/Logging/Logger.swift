import MServeSystem
import Synchronization

/// The error log (gunicorn's name for the application log):
/// `[2026-11-22 11:30:00.123 +0000] [1234] [INFO] [r1] request: POST /demo {...}`.
public final class Logger: Sendable {
    public let file: LogFile
    private let levelState: Atomic<Int>
    /// What starts each line, the time and the pid ("[2026-11-22 11:30:00.123 +0000] [1234] "),
    /// made once per millisecond: a busy worker writes tens of lines in one.
    private struct Stamp: ~Copyable {
        var clock = LogClock()
        var pid: [UInt8] = []
        private var prefix = ByteWriter(capacity: 64)
        private var prefixMillisecond = -1

        mutating func append(to line: inout ByteWriter) {
            let now = LogClock.now()
            let millisecond = now.seconds * 1000 + now.nanoseconds / 1_000_000
            if millisecond != prefixMillisecond {
                prefixMillisecond = millisecond
                prefix.removeAll()
                prefix.append(UInt8(ascii: "["))
                clock.appendErrorStamp(to: &prefix, at: now)
                prefix.append("] ")
                prefix.append(contentsOf: pid)
            }
            prefix.withUnsafeBytes { line.append(contentsOf: $0) }
        }

        mutating func processChanged() {
            pid = Array("[\(currentProcessID())]".utf8)
            prefixMillisecond = -1
        }
    }
    private let stamp = Locked(Stamp())

    public init(file: LogFile, level: LogLevel) {
        self.file = file
        self.levelState = Atomic(level.rawValue)
        processChanged()
    }

    public var level: LogLevel {
        get { LogLevel(rawValue: levelState.load(ordering: .relaxed)) ?? .info }
        set { levelState.store(newValue.rawValue, ordering: .relaxed) }
    }

    /// After fork the pid in each line must be the child's.
    public func processChanged() {
        stamp.withLock { $0.processChanged() }
    }

    public func enabled(_ level: LogLevel) -> Bool { level.rawValue >= levelState.load(ordering: .relaxed) }

    public func log(_ level: LogLevel, _ message: String, recordID: String? = nil) {
        log(level, recordID: recordID) { LogText.appendEscaped(message, to: &$0) }
    }

    /// The hot path's form: the message is written straight into the log buffer by `message`, which
    /// must escape what it takes from clients (LogText).
    /// `always`: written whatever the level (what an operator needs at any level, such as the
    /// bound addresses).
    func log(_ level: LogLevel, recordID: String?, always: Bool = false, _ message: (inout ByteWriter) -> Void) {
        guard always || enabled(level) else { return }
        file.appendLine { line in
            stamp.withLock { $0.append(to: &line) }
            line.append(level.tag)
            if let recordID {
                line.append(UInt8(ascii: "["))
                LogText.appendEscaped(recordID, to: &line)
                line.append("] ")
            }
            message(&line)
        }
    }

    /// A text of several lines (a Python traceback) as that many log lines, each with its own
    /// prefix and the recordid; a single message's newlines are escaped instead, so that no input
    /// reaching one can start a line of its own.
    public func log(_ level: LogLevel, lines text: String, recordID: String? = nil) {
        for line in text.split(separator: "\n") where !line.allSatisfy({ $0 == " " }) {
            log(level, String(line), recordID: recordID)
        }
    }

    public func debug(_ m: String, recordID: String? = nil) { log(.debug, m, recordID: recordID) }
    /// An info line written at every level.
    public func always(_ m: String) { log(.info, recordID: nil, always: true) { LogText.appendEscaped(m, to: &$0) } }
    public func info(_ m: String, recordID: String? = nil) { log(.info, m, recordID: recordID) }
    public func warning(_ m: String, recordID: String? = nil) { log(.warning, m, recordID: recordID) }
    public func error(_ m: String, recordID: String? = nil) { log(.error, m, recordID: recordID) }
    public func critical(_ m: String, recordID: String? = nil) { log(.critical, m, recordID: recordID) }
}

enum LogText {
    /// Request headers whose values are credentials: logged as "[redacted]", never as sent.
    static func isSecret(header name: String) -> Bool {
        name.equalsIgnoringASCIICase("Authorization") || name.equalsIgnoringASCIICase("X-API-Key")
            || name.equalsIgnoringASCIICase("Proxy-Authorization") || name.equalsIgnoringASCIICase("X-Signature")
    }

    /// One log record is one line: newlines and other control characters from clients or models are
    /// escaped, so no input can forge a log line.
    static func appendEscaped(_ s: String, to out: inout ByteWriter) {
        var s = s
        s.withUTF8 { appendEscaped(bytes: $0, to: &out) }
    }

    /// Most text needs no escaping: it is checked first and copied in one go.
    static func appendEscaped(bytes: UnsafeBufferPointer<UInt8>, to out: inout ByteWriter) {
        if bytes.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) {
            out.append(contentsOf: bytes)
        } else {
            for b in bytes { appendEscaped(byte: b, to: &out) }
        }
    }

    static func appendEscaped(bytes: ArraySlice<UInt8>, to out: inout ByteWriter) {
        bytes.withUnsafeBufferPointer { appendEscaped(bytes: $0, to: &out) }
    }

    @inline(__always)
    static func appendEscaped(byte b: UInt8, to out: inout ByteWriter) {
        if b >= 0x20 && b != 0x7F { out.append(b); return }
        switch b {
        case 0x0A: out.append("\\n")
        case 0x0D: out.append("\\r")
        case 0x09: out.append("\\t")
        default:
            let hex = Array("0123456789abcdef".utf8)
            out.append("\\x")
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0xF)])
        }
    }
}
