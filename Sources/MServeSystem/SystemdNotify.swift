import CEvent
import CSystemShim

#if canImport(Glibc)
    import Glibc
#endif

/// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.
public enum SystemdNotify {
    /// Half of WATCHDOG_USEC, when systemd asks this process (WATCHDOG_PID, if set) for keep-alives.
    public static var watchdogInterval: Double? {
        guard let usec = getenv("WATCHDOG_USEC").flatMap({ Double(String(cString: $0)) }), usec > 0 else { return nil }
        if let pid = getenv("WATCHDOG_PID").flatMap({ Int32(String(cString: $0)) }), pid != getpid() { return nil }
        return usec / 2 / 1_000_000
    }

    @discardableResult
    public static func send(_ state: String) -> Bool {
        guard let env = getenv("NOTIFY_SOCKET") else { return false }
        var path = Array(String(cString: env).utf8)
        guard !path.isEmpty, path.count < 108 else { return false }
        if path[0] == UInt8(ascii: "@") { path[0] = 0 }  // abstract namespace
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let bytes = Array(state.utf8)
        let n = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, len) }
        }
        return n == bytes.count
    }
}

/// sd_listen_fds(3) without libsystemd: the listening sockets systemd passed (fds 3...), if they are
/// meant for this process.  The variables are removed so that workers do not take them for theirs.
public enum SocketActivation {
    public static func listenFDs() throws -> [Int32]? {
        guard let pid = getenv("LISTEN_PID").flatMap({ Int32(String(cString: $0)) }), pid == getpid(),
            let n = getenv("LISTEN_FDS").flatMap({ Int32(String(cString: $0)) }), n > 0
        else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        let fds = Array(Int32(3)..<(3 + n))
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var listening: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0, listening != 0 else {
                throw SystemError("socket activation: descriptor \(fd) is not a listening stream socket")
            }
        }
        return fds
    }
}
