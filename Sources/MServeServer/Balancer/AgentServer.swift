import MServe
import MServeSystem

/// The master's agent port (--agent-bind): each connection gets the current `AgentCheck` line and
/// is closed, as HAProxy's agent-check expects.  Served by the master's loop, never by a worker, so
/// it answers even while every worker is busy.
final class AgentServer {
    let address: String
    private let listenFD: Int32
    private var acceptEvent: EventHandle?
    private let report: () -> AgentCheck

    init(host: String, port: Int, named: String, loop: EventLoop, report: @escaping () -> AgentCheck) throws(SystemError) {
        listenFD = try Socket.bind(host: host, port: port, named: named, reusePort: false, backlog: 64)
        let local = Socket.localAddress(listenFD)
        address = local.host.contains(":") ? "[\(local.host)]:\(local.port)" : "\(local.host):\(local.port)"
        self.report = report
        acceptEvent = loop.onReadable(listenFD) { [unowned self] in answer() }
    }

    private func answer() {
        while case .accepted(let fd, _) = Socket.accept(listenFD) {
            let line = Array(report().answer.utf8)
            // A few bytes into a fresh socket's empty buffer: never short.  HAProxy sends nothing
            // unless agent-send is set; what it may have sent is read so that the close is a FIN.
            _ = line.withUnsafeBytes { Socket.send(fd, $0) }
            Socket.shutdownOutput(fd)
            var scratch = [UInt8](repeating: 0, count: 512)
            _ = scratch.withUnsafeMutableBytes { Socket.read(fd, into: $0) }
            Socket.close(fd)
        }
    }

    func close() {
        acceptEvent?.cancel()
        acceptEvent = nil
        Socket.close(listenFD)
    }

    /// In a forked worker: the descriptor is the master's.
    func closeDescriptorAfterFork() { Socket.close(listenFD) }
}
