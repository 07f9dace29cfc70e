import CSystemShim
#if canImport(Glibc)
import Glibc
#endif

/// Non-blocking stream sockets as the HTTP layer and the master use them, with errno turned into
/// outcomes.
public enum Socket {
    public enum ReadOutcome: Equatable { case data(Int), end, wouldBlock, failed }
    public enum SendOutcome: Equatable { case sent(Int), wouldBlock, failed }
    public enum AcceptOutcome { case accepted(fd: Int32, host: String), wouldBlock, failed(SystemError) }

    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> ReadOutcome {
        let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if n > 0 { return .data(n) }
        if n == 0 { return .end }
        return errno == EAGAIN || errno == EINTR ? .wouldBlock : .failed
    }

    /// Without SIGPIPE: a client that vanished is an outcome, not a signal.
    public static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> SendOutcome {
        while true {
            let n = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return n > 0 || bytes.isEmpty ? .sent(n) : .failed }
            if errno == EINTR { continue }
            return errno == EAGAIN ? .wouldBlock : .failed
        }
    }

    /// Bytes the client sent that nobody has read yet.
    public static func pendingInput(_ fd: Int32) -> Int {
        var pending: Int32 = 0
        _ = ioctl(fd, UInt(FIONREAD), &pending)
        return Int(pending)
    }

    public static func shutdownOutput(_ fd: Int32) { _ = shutdown(fd, Int32(SHUT_WR)) }
    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// The next connection of a listening socket: non-blocking, close-on-exec, TCP_NODELAY.
    public static func accept(_ listenFD: Int32) -> AcceptOutcome {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { mserve_accept_nonblocking(listenFD, $0, &len) }
        }
        if fd < 0 {
            let err = errno
            if err == EAGAIN || err == EINTR || err == ECONNABORTED { return .wouldBlock }
            return .failed(SystemError("accept failed", errno: err))
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return .accepted(fd: fd, host: hostText(&ss))
    }

    /// A connected pair of non-blocking Unix stream sockets (in-process tests).
    public static func pair() throws(SystemError) -> (Int32, Int32) {
        var sv: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &sv) == 0 else { throw SystemError("socketpair", errno: errno) }
        for fd in sv { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        return (sv[0], sv[1])
    }

    /// The address a socket is bound to: host text and port.
    public static func localAddress(_ fd: Int32) -> (host: String, port: Int) {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) } }
        return (hostText(&ss), port(&ss))
    }

    private static func port(_ ss: inout sockaddr_storage) -> Int {
        if ss.ss_family == sa_family_t(AF_INET6) {
            return withUnsafePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) } }
        }
        return withUnsafePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) } }
    }

    private static func hostText(_ ss: inout sockaddr_storage) -> String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = ss.ss_family
        withUnsafePointer(to: &ss) { p in
            if family == sa_family_t(AF_INET6) {
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                    var addr = a.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
                }
            } else if family == sa_family_t(AF_INET) {
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    var addr = a.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count))
                }
            }
        }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
