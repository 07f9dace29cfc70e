import MServeSystem

/// One line per request, in the Combined Log Format followed by what an operator of a model server
/// needs: the duration in seconds, the worker's pid and the recordid.
///
/// `127.0.0.1 - - [22/Nov/2026:11:30:00 +0000] "POST /demo HTTP/1.1" 200 27 "-" "curl/7.88.1" 0.000213 pid=1234 rid=r1`
public final class AccessLog: Sendable {
    public let file: LogFile
    private let clock = Locked(LogClock())

    public init(file: LogFile) { self.file = file }

    public struct Entry {
        public var remoteHost: String
        public var method: String
        public var target: String
        public var httpVersion: String
        public var status: Int
        public var bytes: Int
        public var referer: String?
        public var userAgent: String?
        public var durationSeconds: Double
        public var pid: Int32
        public var recordID: String
        /// The request's W3C trace id, and whether a caller sent it (the default line names only those).
        public var traceID: String? = nil
        public var traceContinued = false
        /// The API key's name (the "remote user" of the common log format); nil: "-".
        public var user: String? = nil
        /// For a custom format's {name}i and {name}o atoms.
        public var requestHeaders: [(name: String, value: String)] = []
        public var responseHeaders: [(String, String)] = []
    }

    /// One line: mserve's own format, or `format` (--access-logformat).
    public func log(_ e: Entry, format: AccessLogFormat? = nil) {
        guard let format else { return file.appendLine { line in build(e, into: &line) } }
        file.appendLine { line in format.render(e, into: &line) { out in clock.withLock { $0.appendAccessStamp(to: &out) } } }
    }

    private func build(_ e: Entry, into line: inout ByteWriter) {
        LogText.appendEscaped(e.remoteHost, to: &line)
        line.append(" - ")
        LogText.appendEscaped(e.user ?? "-", to: &line)
        line.append(" [")
        clock.withLock { $0.appendAccessStamp(to: &line) }
        line.append("] \"")
        line.append(string: e.method)
        line.append(UInt8(ascii: " "))
        appendQuoted(e.target, to: &line)
        line.append(UInt8(ascii: " "))
        line.append(string: e.httpVersion)
        line.append("\" ")
        line.appendDecimal(e.status)
        line.append(UInt8(ascii: " "))
        line.appendDecimal(e.bytes)
        line.append(" \"")
        appendQuoted(e.referer ?? "-", to: &line)
        line.append("\" \"")
        appendQuoted(e.userAgent ?? "-", to: &line)
        line.append("\" ")
        AccessLog.appendSeconds(e.durationSeconds, to: &line)
        line.append(" pid=")
        line.appendDecimal(Int(e.pid))
        line.append(" rid=")
        LogText.appendEscaped(e.recordID, to: &line)
        if e.traceContinued, let trace = e.traceID {
            line.append(" trace=")
            line.append(string: trace)
        }
    }

    private func appendQuoted(_ s: String, to out: inout ByteWriter) {
        var s = s
        // Most targets and agents need no escaping: checked first and copied in one go.
        if s.withUTF8({ b in
            guard b.allSatisfy({ $0 >= 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "\"") }) else { return false }
            out.append(contentsOf: b)
            return true
        }) {
            return
        }
        for b in s.utf8 {
            if b == UInt8(ascii: "\"") { out.append("\\\"") } else { LogText.appendEscaped(byte: b, to: &out) }
        }
    }

    /// Microsecond resolution without Foundation's formatter: "0.000213".
    static func appendSeconds(_ s: Double, to out: inout ByteWriter) {
        let micros = Int((max(0, s) * 1_000_000).rounded())
        out.appendDecimal(micros / 1_000_000)
        out.append(UInt8(ascii: "."))
        let frac = micros % 1_000_000
        var div = 100_000
        while div > 0 {
            out.append(UInt8(48 + frac / div % 10))
            div /= 10
        }
    }

    static func formatSeconds(_ s: Double) -> String {
        var out = ByteWriter(capacity: 16)
        appendSeconds(s, to: &out)
        return String(decoding: out.bytes(), as: UTF8.self)
    }
}
