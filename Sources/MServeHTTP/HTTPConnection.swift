import MServeSystem

/// One client connection: reads, parses one request at a time (pipelined ones wait their turn),
/// hands it to the server, and sends the answer when the loop's batch of events ends (the server's
/// outbox), falling back to a write event only when the socket buffer is full.  In the common case
/// a request costs one read and one write system call.
final class HTTPConnection {
    let fd: Int32
    let remoteHost: String
    unowned let server: HTTPServer
    private var parser: RequestParser
    private var input: [UInt8] = []
    private var inputStart = 0
    /// Answers not yet sent: written into by the serializer, kept across requests (its storage is
    /// given back above 64 KiB).
    private var output = ByteWriter(capacity: 1024)
    private var outputStart = 0
    private let readEvent: EventHandle
    private let writeEvent: EventHandle
    private var writeArmed = false
    private var processing = false
    /// A request is with a handler and not yet answered.
    private(set) var busy = false
    /// That request, told if the client goes away.
    /// (Held until it is answered; a weak reference cost a side-table allocation per request.)
    private var current: HTTPRequest?
    private var closeAfterWrite = false
    /// Output is shut down and we read until the client closes, so it reads our answer rather than
    /// a reset (lingering close).
    private(set) var lingering = false
    private(set) var closed = false
    private var peerClosed = false
    private var readPaused = false
    /// Past this much unanswered output or unparsed input, a client that pipelines without reading
    /// is not read from until it catches up.
    private static let backlogLimit = 1 << 20
    /// Set for a rejected request: the client may still be sending what we will not read.
    private var lingerOnClose = false
    private(set) var lastActivity: Double
    /// When the first byte of a request not yet complete arrived: a client that dribbles its
    /// request (slowloris) is closed a client timeout after it started, however steady the drip.
    private(set) var partialSince: Double?

    /// HTTPS: the connection's TLS, through which every byte is read and written.
    private let tls: TLSSession?

    init(fd: Int32, remoteHost: String, server: HTTPServer) {
        self.fd = fd
        self.remoteHost = remoteHost
        self.server = server
        tls = server.tls?.session(fd: fd)
        parser = RequestParser(maxHeaderSize: server.limits.maxHeaderSize, maxBodySize: server.limits.maxBodySize)
        lastActivity = server.clock.now()
        // The events' callbacks reach the connection through the server's registry, which holds it
        // by descriptor (unique among open connections; a closed one's events are cancelled).
        readEvent = server.loop.ioEvent(fd, write: false) { [unowned server] in server.connection(fd)?.readable() }
        writeEvent = server.loop.ioEvent(fd, write: true) { [unowned server] in server.connection(fd)?.writable() }
        readEvent.enable()
    }

    /// Bytes of further (pipelined) requests are waiting to be parsed.
    var hasBufferedInput: Bool { inputStart < input.count }
    /// The offset in the connection's byte stream of `input[0]`, and of the first byte read after
    /// the server began closing (nil: none read since).
    private var inputBase = 0
    private var closingOffset: Int?

    /// Whether requests wait that the client pipelined before the server began closing: a stopping
    /// worker answers those, and no request sent after it began to stop.
    var hasInputPipelinedBeforeClosing: Bool {
        hasBufferedInput && closingOffset.map { inputBase + inputStart < $0 } ?? true
    }

    /// Idle: no request in progress, nothing buffered either way.
    var isIdle: Bool { !busy && inputStart == input.count && outputStart == output.count && !lingering }
    /// Requests answered on this connection.
    private(set) var served = 0

    /// What the timeouts are decided from.
    var activity: ConnectionTimeouts.Activity {
        ConnectionTimeouts.Activity(
            lastActivity: lastActivity, partialSince: partialSince, busy: busy, idle: isIdle,
            served: served, lingering: lingering, unsent: pendingOutput > 0)
    }

    private func readable() {
        if let tls, !tls.handshakeDone {
            switch tls.handshake() {
            case .done:
                setWriteInterest(false)
            case .wouldBlock:
                setWriteInterest(tls.wantsWrite)
                return
            case .failed:
                return close()
            }
        }
        // OpenSSL may hold decrypted bytes the socket will not announce again: read them too.
        repeat { readOnce() } while !closed && (tls?.pending ?? 0) > 0
    }

    /// The socket is writable: the TLS handshake may go on, or the output.
    private func writable() {
        if let tls, !tls.handshakeDone { return readable() }
        flushOutput()
    }

    private func setWriteInterest(_ on: Bool) {
        guard on != writeArmed else { return }
        writeArmed = on
        if on { writeEvent.enable() } else { writeEvent.disarm() }
    }

    private func readOnce() {
        let outcome = server.readScratch.withUnsafeMutableBytes { buf in tls.map { $0.read(into: buf) } ?? Socket.read(fd, into: buf) }
        switch outcome {
        case .data(let n):
            if lingering { return }  // discarded; the linger has a fixed deadline
            lastActivity = server.clock.now()
            if server.closing && closingOffset == nil { closingOffset = inputBase + input.count }
            if partialSince == nil && inputStart == input.count { partialSince = lastActivity }
            if inputStart == input.count {
                inputBase += input.count
                input.removeAll(keepingCapacity: true)
                inputStart = 0
            } else if inputStart > 65536 {
                inputBase += inputStart
                input.removeSubrange(0..<inputStart)
                inputStart = 0
            }
            server.readScratch.withUnsafeBufferPointer { input.append(contentsOf: $0[0..<n]) }
            processInput()
            if !closed && !readPaused && input.count - inputStart > HTTPConnection.backlogLimit + server.limits.maxBodySize {
                readPaused = true
                readEvent.disarm()
            }
        case .end:
            // The client will send no more: answer the complete requests it sent, then close.  A
            // request still waiting for the model is dropped (most clients that stop sending have left).
            peerClosed = true
            readEvent.disarm()
            if busy { current?.clientGone() }
            processInput()
            if !busy && outputStart == output.count { close() }
        case .wouldBlock:
            break
        case .failed:
            close()
        }
    }

    /// Parses and dispatches what is buffered, one request at a time.
    func processInput() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while !busy && !closed && !closeAfterWrite && inputStart < input.count
            && output.count - outputStart < HTTPConnection.backlogLimit
        {
            let result = input.withUnsafeBufferPointer { parser.parse(UnsafeBufferPointer(rebasing: $0[inputStart...])) }
            switch result {
            case .needMore:
                if partialSince == nil { partialSince = server.clock.now() }
                return
            case .expectsContinue:
                write(ResponseSerializer.continueLine, close: false)
                return
            case .request(let head, let body, let consumed):
                inputStart += consumed
                parser.reset()
                partialSince = nil
                busy = true
                if readPaused && !peerClosed && input.count - inputStart <= HTTPConnection.backlogLimit {
                    readPaused = false
                    readEvent.enable()
                }
                // It started when its last bytes came (or the answer before it left): the time
                // of the read or send just made, without asking the clock again.
                let request = HTTPRequest(
                    head: head, body: body, remoteHost: remoteHost, startTime: lastActivity,
                    response: ResponseWriter(connection: self, server: server, head: head))
                current = request
                server.received(request)
            case .error(let e):
                // The rest of what this client sent cannot be trusted to be framed right.
                inputStart = input.count
                busy = true
                server.rejected(
                    e, remoteHost: remoteHost,
                    response: ResponseWriter(connection: self, server: server, head: e.head, rejected: true))
                return
            }
        }
    }

    /// The client took longer than `seconds` to send its request: 408, then the connection closes.
    func timedOut(after seconds: Double) {
        inputStart = input.count
        partialSince = nil
        busy = true
        server.rejected(
            RequestParseError(status: 408, message: "the request was not complete within \(seconds) s"),
            remoteHost: remoteHost, response: ResponseWriter(connection: self, server: server, head: nil, rejected: true))
    }

    /// Queues a response (or an interim 100 Continue, or a piece of a stream), sent when the loop's
    /// batch of events ends.
    func write(_ bytes: [UInt8], close: Bool, finishesRequest: Bool = false, linger: Bool = false) {
        write(close: close, finishesRequest: finishesRequest, linger: linger) { $0.append(contentsOf: bytes) }
    }

    /// The same, with the bytes written straight into the output by `build`.
    func write(close: Bool, finishesRequest: Bool = false, linger: Bool = false, _ build: (inout ByteWriter) -> Void) {
        guard !closed else { return }
        if linger { lingerOnClose = true }
        if finishesRequest {
            busy = false
            served += 1
            current = nil
        }
        if close { closeAfterWrite = true }
        build(&output)
        if !queuedToSend {
            queuedToSend = true
            server.outbox.add(self)
        }
    }

    /// Output waits for the end of the loop's batch of events (HTTPServer.Outbox).
    private var queuedToSend = false

    func sendQueued() {
        queuedToSend = false
        if !closed { flushOutput() }
    }

    /// Bytes written for the client and not yet sent.
    var pendingOutput: Int { output.count - outputStart }

    /// Runs once when the unsent output falls to `lowWater` or below (a paused stream goes on).
    func whenDrained(to lowWater: Int, _ body: @escaping () -> Void) {
        drained = (lowWater, body)
    }
    private var drained: (lowWater: Int, body: () -> Void)?

    private func flushOutput() {
        defer {
            if let d = drained, closed || pendingOutput <= d.lowWater {
                drained = nil
                d.body()
            }
        }
        while outputStart < output.count {
            let outcome = output.withUnsafeBytes { all in
                let rest = UnsafeRawBufferPointer(rebasing: all[outputStart...])
                return tls.map { $0.send(rest) } ?? Socket.send(fd, rest)
            }
            switch outcome {
            case .sent(let n):
                outputStart += n
                lastActivity = server.clock.now()
            case .wouldBlock:
                if !writeArmed {
                    writeArmed = true
                    writeEvent.enable()
                }
                // A client that reads slowly: what it has taken goes, so that a stream that is
                // topped up as it drains does not keep every byte it ever sent.
                if outputStart > 65536 && outputStart * 2 > output.count {
                    output.removeFirst(outputStart)
                    outputStart = 0
                }
                return
            case .failed:
                close()
                return
            }
        }
        // All sent: the buffer starts over (and gives back what one large answer made it grow to,
        // and malloc what it then holds free: RSS stayed at 400-580 MB after one 10 MB stream).
        let large = output.capacity > 1 << 20
        output.removeAll(keepingCapacityUpTo: 65536)
        if large { Memory.returnFreePages() }
        outputStart = 0
        if writeArmed {
            writeArmed = false
            writeEvent.disarm()
        }
        guard !busy else { return }
        if closeAfterWrite {
            finishClose()
            return
        }
        // Pipelined requests waiting behind the one just answered (a no-op inside processInput).
        processInput()
        if peerClosed && !busy && outputStart == output.count && !closed { close() }
    }

    /// After a response marked close: close at once if the client has nothing more in flight,
    /// otherwise shut our side and drain theirs for a moment (lingering close).
    private func finishClose() {
        if inputStart == input.count && Socket.pendingInput(fd) == 0 && (tls?.pending ?? 0) == 0 && !lingerOnClose {
            tls?.shutdown()
            close()
            return
        }
        lingering = true
        lastActivity = server.clock.now()
        tls?.shutdown()
        Socket.shutdownOutput(fd)
    }

    func close() {
        guard !closed else { return }
        closed = true
        if busy { current?.clientGone() }
        readEvent.cancel()
        writeEvent.cancel()
        Socket.close(fd)
        server.closed(self)
    }
}
