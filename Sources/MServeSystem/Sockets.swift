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
        // recv, not read: the kernel's socket path without the file layer's (~0.08 µs a request).
        let n = Glibc.recv(fd, buffer.baseAddress, buffer.count, 0)
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
            return withUnsafePointer(to: &ss) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
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
            } else if family == sa_family_t(AF_UNIX) {
                buf = Array("unix".utf8CString)
            } else if family == sa_family_t(AF_INET) {
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    var addr = a.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count))
                }
            }
        }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: listening sockets

    /// A socket bound to `host`:`port` (SO_REUSEADDR; SO_REUSEPORT if asked; IPv6 only for an IPv6
    /// address), listening if `backlog` is given.  `named` is how errors name the address.
    public static func bind(host: String, port: Int, named: String, reusePort: Bool, backlog: Int32?) throws(SystemError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let info = res else {
            throw SystemError("cannot resolve bind address \(named): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(res) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket for \(named)", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        if info.pointee.ai_family == AF_INET6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        if Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
            let e = errno
            Glibc.close(fd)
            throw SystemError("cannot bind \(named)", errno: e)
        }
        if let backlog {
            do { try listen(fd, backlog: backlog, named: named) } catch {
                Glibc.close(fd)
                throw error
            }
        }
        return fd
    }

    public static func listen(_ fd: Int32, backlog: Int32, named: String) throws(SystemError) {
        guard Glibc.listen(fd, backlog) == 0 else { throw SystemError("cannot listen on \(named)", errno: errno) }
    }

    /// Whether a socket has SO_REUSEPORT (systemd's `ReusePort=yes`).
    public static func hasReusePort(_ fd: Int32) -> Bool {
        var on: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, &len) == 0 && on != 0
    }

    /// Connections the kernel has completed on a listening socket and nobody has accepted yet.
    public static func acceptQueueLength(_ fd: Int32) -> Int {
        var info = tcp_info()
        var len = socklen_t(MemoryLayout<tcp_info>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &len) == 0 else { return 0 }
        return Int(info.tcpi_unacked)
    }

    /// A TCP connection to `host`:`port` (a name or address), made blocking (a load generator
    /// connects before it measures), then non-blocking with TCP_NODELAY.  With a `timeout` it stays
    /// blocking, and connecting, reads and writes give up after that many seconds.
    public static func connectTCP(host: String, port: Int, timeout: Double? = nil) throws(SystemError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let first = res else { throw SystemError("cannot resolve \(host): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(res) }
        var lastError: Int32 = 0
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let info = next {
            next = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { lastError = errno; continue }
            if let timeout { setTimeouts(fd, timeout) }
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                if timeout != nil { return fd }
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            }
            lastError = errno
            Glibc.close(fd)
        }
        throw SystemError("cannot connect to \(host):\(port)", errno: lastError)
    }

    // MARK: Unix sockets

    /// A listening Unix stream socket at `path` with permissions `mode` (owned by `owner` if given).
    /// A socket file left by a server that is gone (nobody accepts on it) is replaced; a live one,
    /// or a file that is not a socket, is an error.
    public static func bindUnix(path: String, mode: UInt32, owner: Identity?, backlog: Int32) throws(SystemError) -> Int32 {
        var (addr, len) = try unixAddress(path)
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw SystemError("cannot bind unix:\(path): it exists and is not a socket") }
            let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let live = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, len) == 0 } }
            Glibc.close(probe)
            if live { throw SystemError("cannot bind unix:\(path): another server accepts on it") }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket for unix:\(path)", errno: errno) }
        // Created with no more than `mode` allows, so that no one slips in before the chmod below.
        let previousMask = umask(mode_t(~mode & 0o777))
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, len) } }
        umask(previousMask)
        guard bound == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SystemError("cannot bind unix:\(path)", errno: e)
        }
        if let owner, chown(path, owner.uid, owner.gid) != 0 {
            let e = errno
            Glibc.close(fd)
            throw SystemError("cannot give unix:\(path) to uid \(owner.uid)", errno: e)
        }
        guard chmod(path, mode_t(mode)) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SystemError("cannot set the mode of unix:\(path)", errno: e)
        }
        do { try listen(fd, backlog: backlog, named: "unix:\(path)") } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    private static func unixAddress(_ path: String) throws(SystemError) -> (sockaddr_un, socklen_t) {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw SystemError("unix socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        return (addr, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1))
    }

    /// A blocking connection to the Unix socket at `path`, whose reads and writes give up after
    /// `timeout` seconds (a client's side: `mserve ctl`).
    public static func connectUnix(path: String, timeout: Double) throws(SystemError) -> Int32 {
        var (addr, len) = try unixAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        setTimeouts(fd, timeout)
        let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, len) } }
        guard connected == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SystemError("cannot connect to \(path)", errno: e)
        }
        return fd
    }

    /// Blocking reads and writes (and, on Linux, connect) give up after `seconds`.
    private static func setTimeouts(_ fd: Int32, _ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Reads a blocking socket until the peer closes it, up to `limit` bytes.
    public static func receiveToEnd(_ fd: Int32, limit: Int) throws(SystemError) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(errno == EAGAIN ? "no answer in time" : "read", errno: errno)
            }
            out += chunk[0..<n]
        }
        return out
    }

    /// Writes all of `bytes` to a blocking socket.
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("send", errno: errno)
            }
            offset += n
        }
    }

    /// Reads exactly `count` bytes from a blocking socket; nil if it ends first.
    public static func receive(_ fd: Int32, count: Int) throws(SystemError) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = out[offset...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return nil }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(errno == EAGAIN ? "no answer in time" : "read", errno: errno)
            }
            offset += n
        }
        return out
    }

    /// Removes a Unix socket's file (at stop).
    public static func unlinkUnix(_ path: String) { _ = unlink(path) }
}
