import MServeHTTP
import MServeSystem

/// The one place that records a request: its request line in the error log when it arrives, and
/// when it is answered the response line, the access-log line and the scoreboard's counts.
public final class RequestObserver {
    let logger: Logger
    let accessLog: AccessLog?
    let logBodyLimit: Int
    /// --access-logformat, if set.
    let accessLogFormat: AccessLogFormat?
    /// This worker's record in the server-wide counters (nil in in-process tests).
    let scoreboard: Scoreboard?
    let scoreboardRecord: Int?
    private let pid = currentProcessID()
    /// Requests in flight, to publish with each answer.
    var inFlight: () -> Int = { 0 }

    package init(
        logger: Logger, accessLog: AccessLog?, logBodyLimit: Int, accessLogFormat: AccessLogFormat? = nil,
        scoreboard: Scoreboard? = nil, scoreboardRecord: Int? = nil
    ) {
        self.logger = logger
        self.accessLog = accessLog
        self.accessLogFormat = accessLogFormat
        self.logBodyLimit = logBodyLimit
        self.scoreboard = scoreboard
        self.scoreboardRecord = scoreboardRecord
    }

    /// A request was received (or, with `rejection`, refused while parsing).  Its body shows at
    /// debug level (its size otherwise: a million requests' bodies would be most of the log), and
    /// its headers follow in a line of their own.
    func started(
        method: String, target: String, body: [UInt8], recordID: String, trace: TraceContext = .none, rejection: String? = nil,
        headers: [(name: String, value: String)] = []
    ) {
        if let scoreboard, let r = scoreboardRecord { scoreboard.setInFlight(r, inFlight()) }
        logger.log(.info, recordID: recordID) { line in
            line.append("request: ")
            LogText.appendEscaped(method, to: &line)
            line.append(UInt8(ascii: " "))
            LogText.appendEscaped(target, to: &line)
            if let rejection {
                line.append(" (rejected: ")
                LogText.appendEscaped(rejection, to: &line)
                line.append(UInt8(ascii: ")"))
            } else if logger.enabled(.debug) {
                line.append(UInt8(ascii: " "))
                appendExcerpt(body, to: &line)
            } else if !body.isEmpty {
                appendSize(body.count, to: &line)
            }
            // A trace a caller began is named in the request's line (the access line has it too).
            if trace.continued {
                line.append(" trace=")
                line.append(string: trace.traceID)
            }
        }
        if logger.enabled(.debug) && !headers.isEmpty {
            logger.log(.debug, recordID: recordID) { line in
                line.append("headers:")
                for (name, value) in headers {
                    line.append(UInt8(ascii: " "))
                    LogText.appendEscaped(name, to: &line)
                    line.append(": ")
                    LogText.appendEscaped(LogText.isSecret(header: name) ? "[redacted]" : value, to: &line)
                    line.append(UInt8(ascii: ";"))
                }
            }
        }
    }

    /// What a request was answered with; `logged` is the body (or a stream's summary) for the log line.
    struct Answer {
        var method: String
        var target: String
        var httpVersion: String
        var remoteHost: String
        var userAgent: String?
        var referer: String?
        var status: Int
        var logged: [UInt8]
        /// `logged` says what was sent (a stream's pieces) rather than being the body.
        var summary = false
        var bytes: Int
        var recordID: String
        var trace: TraceContext = .none
        var started: Double
        var model: Int?
        /// The API key's name.
        var user: String? = nil
        var requestHeaders: [(name: String, value: String)] = []
        var responseHeaders: [(String, String)] = []
        var level: LogLevel? = nil
    }

    func finished(_ a: Answer) {
        let now = monotonicSeconds()
        let seconds = now - a.started
        if let scoreboard, let r = scoreboardRecord {
            scoreboard.countRequest(r, model: a.model, status: a.status, seconds: seconds, now: now)
            scoreboard.setInFlight(r, inFlight())
        }
        let level = a.level ?? RequestObserver.level(status: a.status)
        logger.log(level, recordID: a.recordID) { line in
            line.append("response: ")
            line.appendDecimal(a.status)
            // An error's body is its reason, worth its bytes; a success's body shows at debug level.
            if a.summary || a.status >= 400 || logger.enabled(.debug) {
                line.append(UInt8(ascii: " "))
                appendExcerpt(a.logged, to: &line)
            } else {
                appendSize(a.logged.count, to: &line)
            }
        }
        accessLog?.log(
            AccessLog.Entry(
                remoteHost: a.remoteHost, method: a.method, target: a.target, httpVersion: a.httpVersion, status: a.status,
                bytes: a.bytes, referer: a.referer, userAgent: a.userAgent, durationSeconds: seconds, pid: pid, recordID: a.recordID,
                traceID: a.trace.traceID.isEmpty ? nil : a.trace.traceID, traceContinued: a.trace.continued, user: a.user,
                requestHeaders: accessLogFormat == nil ? [] : a.requestHeaders,
                responseHeaders: accessLogFormat == nil ? [] : a.responseHeaders), format: accessLogFormat)
    }

    /// tornado's choice by status; a client that left (499) is no fault of the request or the server.
    static func level(status: Int) -> LogLevel {
        status == 499 ? .info : status >= 500 ? .error : status >= 400 ? .warning : .info
    }

    /// A model's running and waiting inferences in this worker (`mserve ctl`'s `show models`).
    package func modelLoad(model: Int?, running: Int, waiting: Int) {
        guard let scoreboard, let r = scoreboardRecord else { return }
        scoreboard.setModelLoad(r, model: model, running: running, waiting: waiting)
    }

    /// A generative model's engine now (`GenerativeModel.load`).
    package func generationLoad(model: Int?, _ load: GenerationLoad) {
        guard let scoreboard, let r = scoreboardRecord else { return }
        scoreboard.setGenerationLoad(r, model: model, load)
    }

    /// A generated token's arrival: the first after `seconds` from the request, or the next after
    /// `seconds` from the one before.
    func observeToken(model: Int?, first: Bool, seconds: Double) {
        guard let scoreboard, let r = scoreboardRecord else { return }
        scoreboard.observe(r, model: model, first ? .firstToken : .interToken, seconds)
    }

    func countTokens(model: Int?, prompt: Int, generated: Int) {
        guard let scoreboard, let r = scoreboardRecord else { return }
        scoreboard.countTokens(r, model: model, prompt: prompt, generated: generated)
    }

    /// The inference's time in the queue and in the model (histograms).
    func observeInference(model: Int?, queued: Double, ran: Double) {
        guard let scoreboard, let r = scoreboardRecord else { return }
        scoreboard.observe(r, model: model, .queue, queued)
        scoreboard.observe(r, model: model, .inference, ran)
    }

    private func appendSize(_ bytes: Int, to line: inout ByteWriter) {
        line.append(" (")
        line.appendDecimal(bytes)
        line.append(" bytes)")
    }

    /// The first log_body_limit bytes of a body, escaped, with the full size when it was cut.
    private func appendExcerpt(_ body: [UInt8], to line: inout ByteWriter) {
        LogText.appendEscaped(bytes: body[0..<min(logBodyLimit, body.count)], to: &line)
        if body.count > logBodyLimit { line.append(string: "...(\(body.count) bytes)") }
    }
}
