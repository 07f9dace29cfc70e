import MServe
import MServeSystem
import Synchronization

/// One client thread of `mserve bench`: its own event loop and connections, each with at most one
/// request outstanding.  Closed loop: a connection sends again as soon as it is answered.  Open
/// loop: requests are due on the arrival schedule; one due while every connection is busy waits,
/// and its latency counts from when it was due.
final class BenchClient {
    struct Plan: Sendable {
        let options: BenchOptions
        let request: [UInt8]
        let connections: Int
        let rate: Double?
        let seed: UInt64
        let measureFrom: Double
        let endAt: Double
    }

    /// Shared by the threads: answers counted so far (progress, --requests) and whether to stop.
    final class Shared: Sendable {
        let answered = Atomic<Int>(0)
        let errors = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
    }

    private final class Connection {
        var fd: Int32 = -1
        var readEvent: EventHandle?
        var writeEvent: EventHandle?
        var parser = ResponseParser()
        var sse = SSEScanner()
        var busy = false
        var unsent: ArraySlice<UInt8> = []
        /// When the request was due (open loop) or sent (closed loop), and when its tokens came.
        var due = 0.0
        var firstToken: Double?
        var lastToken: Double?
        /// The start of an error answer's body, for the report to say what the server said.
        var errorBody: [UInt8] = []
    }

    private let plan: Plan
    private let shared: Shared
    private let loop: EventLoop
    private var connections: [Connection] = []
    private var schedule: ArrivalSchedule?
    private var waiting: [Double] = []
    private var arrivalTimer: EventHandle?
    private(set) var result = BenchResult()
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(plan: Plan, shared: Shared) throws {
        self.plan = plan
        self.shared = shared
        loop = try EventLoop()
    }

    func run() -> BenchResult {
        let now = monotonicSeconds()
        for _ in 0..<plan.connections {
            let c = Connection()
            connections.append(c)
            connect(c)
        }
        if let rate = plan.rate {
            schedule = ArrivalSchedule(rate: rate, start: now, seed: plan.seed)
            arrivalTimer = loop.timer { [unowned self] in arrivals() }
            arrivals()
        } else {
            for c in connections where c.fd >= 0 { send(c, due: monotonicSeconds()) }
        }
        // Timeouts, reconnects, the end of the run, and the other threads' --requests.
        loop.after(0.02, repeating: true) { [unowned self] in housekeeping() }
        loop.run()
        // Still running when the window closed (with --requests, those past the count are not
        // wanted): a stream longer than the run shows here rather than as nothing at all.
        if plan.options.requests == nil {
            result.unfinished += UInt64(connections.count { $0.busy })
        }
        for c in connections { close(c) }
        return result
    }

    private var stopping: Bool { shared.stop.load(ordering: .relaxed) }

    private func connect(_ c: Connection) {
        do {
            c.fd = try Socket.connectTCP(host: plan.options.host, port: plan.options.port)
        } catch {
            c.fd = -1
            fail("connect")
            return
        }
        c.parser.reset()
        c.sse = SSEScanner()
        c.readEvent = loop.onReadable(c.fd) { [unowned self, unowned c] in readable(c) }
    }

    private func close(_ c: Connection) {
        c.readEvent?.cancel()
        c.readEvent = nil
        c.writeEvent?.cancel()
        c.writeEvent = nil
        if c.fd >= 0 { Socket.close(c.fd) }
        c.fd = -1
        c.busy = false
    }

    private func send(_ c: Connection, due: Double) {
        guard !stopping else { return }
        if c.fd < 0 { connect(c) }
        guard c.fd >= 0 else { return }
        c.busy = true
        c.due = due
        c.firstToken = nil
        c.lastToken = nil
        c.errorBody.removeAll(keepingCapacity: true)
        c.unsent = plan.options.sign == nil ? plan.request[...] : signedRequest()[...]
        write(c)
    }

    private var signed = 0
    private lazy var signing: (secret: [UInt8], head: [UInt8], body: [UInt8], method: String, prefix: String) = {
        let bytes = plan.request
        let end = (0..<max(0, bytes.count - 3)).first { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 } ?? 0
        let prefix = (try? Crypto.randomBytes(8)).map(Crypto.hex) ?? "bench"
        return (
            RequestSignature.signingSecret(ofKey: plan.options.sign?.key ?? ""), Array(bytes[..<(end + 2)]), Array(bytes[(end + 4)...]),
            plan.options.method ?? (plan.options.body == nil ? "GET" : "POST"), prefix
        )
    }()

    /// mserve's signed form of the request: a nonce unique to this client and request.
    private func signedRequest() -> [UInt8] {
        signed += 1
        let s = signing
        let name = plan.options.sign?.name ?? ""
        let timestamp = Int64(LogClock.now().seconds)
        let nonce = "\(s.prefix)-\(plan.seed)-\(signed)"
        let signature = RequestSignature.sign(
            secret: s.secret, method: s.method, target: plan.options.path, timestamp: timestamp,
            nonce: nonce, body: s.body)
        let headers = "X-MServe-Key: \(name)\r\nX-MServe-Timestamp: \(timestamp)\r\nX-MServe-Nonce: \(nonce)\r\nX-Signature: \(signature)\r\n\r\n"
        return s.head + Array(headers.utf8) + s.body
    }

    private func write(_ c: Connection) {
        while !c.unsent.isEmpty {
            switch c.unsent.withUnsafeBytes({ Socket.send(c.fd, $0) }) {
            case .sent(let n): c.unsent = c.unsent.dropFirst(n)
            case .wouldBlock:
                if c.writeEvent == nil {
                    c.writeEvent = loop.ioEvent(c.fd, write: true) { [unowned self, unowned c] in write(c) }
                    c.writeEvent?.enable()
                }
                return
            case .failed:
                return broken(c, "write")
            }
        }
        c.writeEvent?.cancel()
        c.writeEvent = nil
    }

    private func readable(_ c: Connection) {
        let outcome = buffer.withUnsafeMutableBytes { Socket.read(c.fd, into: $0) }
        switch outcome {
        case .wouldBlock: return
        case .end, .failed:
            if c.busy && c.parser.finishAtClose() { return answered(c, keepOpen: false) }
            return broken(c, outcome == .end ? "closed" : "read")
        case .data(let n):
            guard c.busy else { return broken(c, "unexpected bytes") }
            let outcome: Result<Bool, ResponseParseError> = buffer.withUnsafeBytes { raw in
                do throws(ResponseParseError) {
                    return .success(
                        try c.parser.consume(UnsafeRawBufferPointer(rebasing: raw[0..<n])) { body, status in
                            if status >= 400 {
                                if c.errorBody.count < 512 { c.errorBody += body.prefix(512 - c.errorBody.count) }
                            } else if plan.options.stream {
                                tokens(c, body)
                            }
                        }.complete)
                } catch {
                    return .failure(error)
                }
            }
            switch outcome {
            case .success(true): answered(c, keepOpen: c.parser.keepAlive)
            case .success(false): break
            case .failure: broken(c, "bad response")
            }
        }
    }

    private func tokens(_ c: Connection, _ body: UnsafeRawBufferPointer) {
        let kind = plan.options.kind
        c.sse.feed(body) { event, data in
            guard event != "error", BenchClient.carriesContent(data, kind: kind) else { return }
            let now = monotonicSeconds()
            if c.firstToken == nil { c.firstToken = now }
            // Tokens count when they arrive in the window, whenever their stream began: streams
            // longer than the run are still measured.
            let inWindow = now >= plan.measureFrom && now <= plan.endAt
            if let last = c.lastToken, inWindow { result.interToken.record(BenchClient.micros(now - last)) }
            c.lastToken = now
            if inWindow { result.tokens += 1 }
        }
    }

    /// Whether an SSE event is a token: OpenAI's chunks only when they carry text (the first often
    /// carries just the role); any other model's events all count.
    static func carriesContent(_ data: [UInt8], kind: BenchOptions.Kind) -> Bool {
        if data == Array("[DONE]".utf8) { return false }
        guard kind == .chat || kind == .completions else { return true }
        guard case .success(let v) = Result(catching: { () throws(JSONParseError) in try JSONParser.parse(data) }),
            case .array(let choices)? = v["choices"], let first = choices.first
        else { return false }
        let text = kind == .chat ? first["delta"]?["content"] : first["text"]
        if case .string(let s)? = text { return !s.isEmpty }
        return false
    }

    static func micros(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds * 1_000_000)) }

    private func answered(_ c: Connection, keepOpen: Bool) {
        let now = monotonicSeconds()
        if c.due >= plan.measureFrom && now <= plan.endAt {
            // With --requests, exactly that many are counted, whichever thread answers last.
            let total = shared.answered.add(1, ordering: .relaxed).newValue
            let limit = plan.options.requests ?? Int.max
            if total >= limit { shared.stop.store(true, ordering: .relaxed) }
            if total <= limit {
                result.latency.record(BenchClient.micros(now - c.due))
                result.statuses[c.parser.status, default: 0] += 1
                if let first = c.firstToken { result.firstToken.record(BenchClient.micros(first - c.due)) }
                if !(200..<400).contains(c.parser.status) {
                    shared.errors.add(1, ordering: .relaxed)
                    if result.errorSamples[c.parser.status] == nil { result.errorSamples[c.parser.status] = BenchResult.sample(c.errorBody) }
                }
            }
        }
        c.busy = false
        c.parser.reset()
        c.sse = SSEScanner()
        if !keepOpen { close(c) }
        next(c)
    }

    private func broken(_ c: Connection, _ why: String) {
        let counted = c.busy && c.due >= plan.measureFrom
        close(c)
        if counted { fail(why) }
        next(c)
    }

    private func fail(_ why: String) {
        guard monotonicSeconds() >= plan.measureFrom else { return }
        result.failures[why, default: 0] += 1
        shared.errors.add(1, ordering: .relaxed)
    }

    /// What a connection does once free: closed loop, the next request; open loop, one that waits.
    private func next(_ c: Connection) {
        guard !stopping, monotonicSeconds() < plan.endAt else { return }
        if plan.rate == nil {
            send(c, due: monotonicSeconds())
        } else if !waiting.isEmpty {
            send(c, due: waiting.removeFirst())
        }
    }

    private func arrivals() {
        guard var s = schedule else { return }
        let now = monotonicSeconds()
        while s.next <= now && now < plan.endAt {
            let due = s.advance()
            if let free = connections.first(where: { !$0.busy }) { send(free, due: due) } else { waiting.append(due) }
        }
        schedule = s
        arrivalTimer?.arm(max(0.0001, s.next - monotonicSeconds()))
    }

    private func housekeeping() {
        let now = monotonicSeconds()
        if stopping || now >= plan.endAt { return loop.stop() }
        for c in connections {
            if c.busy && now - c.due > plan.options.timeout {
                broken(c, "timeout")
            } else if c.fd < 0 && !c.busy && plan.rate == nil {
                send(c, due: now)  // reconnect after a failure
            }
        }
    }
}
