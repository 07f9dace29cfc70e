import MServe
import MServeSystem

/// The master's control socket: a Unix socket (mode 0600 by default) served by the master's own
/// loop, speaking gunicornc's framing.  A client costs the master at most `maxClients` descriptors
/// and `ControlFrameDecoder.maxPayload` bytes of input and `maxPendingOutput` of replies each (one
/// that sends without reading is not read until it has read); one that sends garbage gets an error, one that
/// sends an oversized length is told so and closed, and one that sends nothing is closed after
/// `idleSeconds`.
final class ControlServer {
    static let maxClients = 16
    /// gunicorn's server closes an idle connection after 300 s.
    static let idleSeconds = 300.0
    /// Replies waiting for a client beyond which it is not read.
    static let maxPendingOutput = 64 * 1024

    let path: String
    private let listenFD: Int32
    private var acceptEvent: EventHandle?
    private var clients: [Int32: Client] = [:]
    private unowned let loop: EventLoop
    /// Answers one command; `then` runs once the reply has been queued (a shutdown stops after its
    /// reply is on its way).
    private let answer: (ControlCommand) -> (Result<JSON, ControlError>, then: (() -> Void)?)
    private let logger: Logger

    private final class Client {
        let fd: Int32
        var decoder = ControlFrameDecoder()
        var output: [UInt8] = []
        var closeWhenSent = false
        /// Not read while its replies wait (`maxPendingOutput`).
        var paused = false
        var readEvent: EventHandle?
        var writeEvent: EventHandle?
        var idleTimer: EventHandle?
        init(fd: Int32) { self.fd = fd }
    }

    init(
        path: String, mode: UInt32, loop: EventLoop, logger: Logger,
        answer: @escaping (ControlCommand) -> (Result<JSON, ControlError>, then: (() -> Void)?)
    ) throws(SystemError) {
        self.path = path
        self.loop = loop
        self.logger = logger
        self.answer = answer
        listenFD = try Socket.bindUnix(path: path, mode: mode, owner: nil, backlog: 16)
        acceptEvent = loop.onReadable(listenFD) { [unowned self] in acceptClients() }
    }

    /// At stop: the socket file goes too.
    func close() {
        for fd in Array(clients.keys) { drop(fd) }
        acceptEvent?.cancel()
        acceptEvent = nil
        Socket.close(listenFD)
        Socket.unlinkUnix(path)
    }

    /// In a forked worker: the descriptors are the master's, the file stays (the loop's events are
    /// gone with the abandoned loop).
    func closeDescriptorsAfterFork() {
        for fd in clients.keys { Socket.close(fd) }
        Socket.close(listenFD)
    }

    private func acceptClients() {
        while true {
            switch Socket.accept(listenFD) {
            case .accepted(let fd, _):
                guard clients.count < ControlServer.maxClients else {
                    // Told why, without reading anything it sent.
                    let refusal = ControlReply.encode(id: .null, .failure(.failed("too many control connections (\(ControlServer.maxClients))")))
                    _ = refusal.withUnsafeBytes { Socket.send(fd, $0) }
                    Socket.close(fd)
                    continue
                }
                let client = Client(fd: fd)
                clients[fd] = client
                client.readEvent = loop.onReadable(fd) { [unowned self] in readClient(fd) }
                client.idleTimer = loop.timer { [unowned self] in drop(fd) }
                client.idleTimer?.arm(ControlServer.idleSeconds)
            case .wouldBlock:
                return
            case .failed(let error):
                logger.error("control socket: \(error)")
                return
            }
        }
    }

    private func readClient(_ fd: Int32) {
        guard let client = clients[fd] else { return }
        client.idleTimer?.arm(ControlServer.idleSeconds)
        var chunk = [UInt8](repeating: 0, count: 4096)
        let outcome = chunk.withUnsafeMutableBytes { Socket.read(fd, into: $0) }
        switch outcome {
        case .data(let n): client.decoder.append(chunk[0..<n])
        case .wouldBlock: return
        case .end, .failed: return drop(fd)
        }
        answerFrames(client)
    }

    /// Answers the frames read so far, until the replies waiting to be sent pass
    /// `maxPendingOutput`: then the client is not read until it has taken them, so a client that
    /// sends without reading holds at most that much of the master's memory.
    private func answerFrames(_ client: Client) {
        let fd = client.fd
        while !client.closeWhenSent && client.output.count < ControlServer.maxPendingOutput {
            let payload: [UInt8]
            do throws(ControlFrameError) {
                guard let p = try client.decoder.next() else { break }
                payload = p
            } catch {
                // No way to find the next frame after a bad length: say why and close.
                queue(ControlReply.encode(id: .null, .failure(.malformed(error.description))), to: client)
                client.closeWhenSent = true
                client.readEvent?.cancel()
                client.readEvent = nil
                break
            }
            guard let (id, words) = ControlCommand.request(payload) else {
                queue(ControlReply.encode(id: .null, .failure(.malformed("expected a JSON object with a \"command\" string"))), to: client)
                continue
            }
            let (result, then) = ControlCommand.parse(words).map(answer).flatMapResult()
            queue(ControlReply.encode(id: id, result), to: client)
            then?()
            guard clients[fd] != nil else { return }
        }
        flush(client)
        guard clients[fd] != nil, !client.closeWhenSent else { return }
        if client.output.count >= ControlServer.maxPendingOutput {
            client.readEvent?.disarm()
            client.paused = true
        }
    }

    private func queue(_ bytes: [UInt8], to client: Client) {
        client.output.append(contentsOf: bytes)
        flush(client)
    }

    private func flush(_ client: Client) {
        while !client.output.isEmpty {
            switch client.output.withUnsafeBytes({ Socket.send(client.fd, $0) }) {
            case .sent(let n):
                client.output.removeFirst(n)
            case .wouldBlock:
                if client.writeEvent == nil {
                    client.writeEvent = loop.ioEvent(client.fd, write: true) { [unowned self] in
                        if let c = clients[client.fd] { flush(c) }
                    }
                    client.writeEvent?.enable()
                }
                return
            case .failed:
                return drop(client.fd)
            }
        }
        client.writeEvent?.cancel()
        client.writeEvent = nil
        if client.closeWhenSent { return drop(client.fd) }
        if client.paused {
            client.paused = false
            client.readEvent?.enable()
            answerFrames(client)
        }
    }

    private func drop(_ fd: Int32) {
        guard let client = clients.removeValue(forKey: fd) else { return }
        client.readEvent?.cancel()
        client.writeEvent?.cancel()
        client.idleTimer?.cancel()
        Socket.close(fd)
    }
}

private extension Result where Success == (Result<JSON, ControlError>, then: (() -> Void)?), Failure == ControlError {
    func flatMapResult() -> (Result<JSON, ControlError>, then: (() -> Void)?) {
        switch self {
        case .success(let pair): return pair
        case .failure(let e): return (.failure(e), nil)
        }
    }
}
