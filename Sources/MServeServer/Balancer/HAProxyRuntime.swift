import MServe
import MServeSystem

/// HAProxy's runtime API over TCP: one command per connection, the answer read until HAProxy
/// closes.  Blocking, with a short timeout: it runs on the master's loop at boot and at stop only.
enum HAProxyRuntime {
    static let timeout = 2.0

    /// The answer's text, or a description of why there is none.
    static func send(_ command: String, host: String, port: Int) -> Result<String, SystemError> {
        do {
            let fd = try Socket.connectTCP(host: host, port: port, timeout: timeout)
            defer { Socket.close(fd) }
            try Socket.sendAll(fd, Array((command + "\n").utf8))
            return .success(String(decoding: try Socket.receiveToEnd(fd, limit: 65536), as: UTF8.self))
        } catch {
            return .failure(error)
        }
    }

    /// Sends `commands` in order and stops at the first that fails: nil, or what went wrong.
    static func run(_ commands: [String], on a: Announcement) -> String? {
        for c in commands {
            switch send(c, host: a.apiHost, port: a.apiPort) {
            case .failure(let error): return "\(c): \(error)"
            case .success(let answer):
                if let failure = Announcement.failure(in: answer) { return "\(c): \(failure)" }
            }
        }
        return nil
    }
}
