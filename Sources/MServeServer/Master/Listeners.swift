import MServe
import MServeSystem

/// A `-b` address, parsed: "127.0.0.1:8000", "[::1]:8000", "0.0.0.0:0", "localhost:8000",
/// "unix:/run/mserve.sock".
public struct BindAddress: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// A Unix socket's path (host and port then mean nothing).
    public var unixPath: String?

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws(ConfigError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw ConfigError("bind \(text): expected unix:PATH") }
            guard path.utf8.count < 108 else { throw ConfigError("bind \(text): a unix socket path must be under 108 bytes") }
            host = "unix"
            port = 0
            unixPath = path
            return
        }
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ConfigError("bind \(text): missing ']' in IPv6 address") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw ConfigError("bind \(text): expected [HOST]:PORT") }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ConfigError("bind \(text): expected HOST:PORT") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw ConfigError("bind \(text): write IPv6 addresses as [HOST]:PORT") }
        }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ConfigError("bind \(text): port must be a number from 0 to 65535")
        }
        self.host = String(host)
        self.port = port
    }

    public var description: String {
        if let unixPath { return "unix:" + unixPath }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// The master's listening sockets: for every bind address, one SO_REUSEPORT socket per worker slot.
///
/// The master keeps every slot's socket open for the life of the server.  A connection the kernel
/// has queued on a slot whose worker died stays queued and is served by the replacement, instead of
/// being reset when the last descriptor closes; the cost is that new connections hashed to that
/// slot wait until the replacement is up (README: "Sockets and worker slots").
public final class Listeners {
    public private(set) var addresses: [BindAddress]
    /// slots[slot][address index]
    public private(set) var slots: [[Int32]] = []
    let backlog: Int32
    /// Sockets systemd passed (socket activation), one per address; empty when mserve bound its own.
    private var inherited: [Int32] = []
    /// Per inherited socket: whether it has SO_REUSEPORT (`ReusePort=yes`), so that each further slot
    /// can get a socket of its own; without it every worker accepts from the one socket.
    private var inheritedReusePort: [Bool] = []
    /// Per address: our listening sockets in the order of the kernel's array for their SO_REUSEPORT
    /// group (a listen appends; a close moves the last one into the hole), for ReuseportSteering.
    private var groups: [[Int32]] = []
    /// Why some slots share the first slot's socket, once that has happened (for the master's log).
    public var sharing: String?
    /// Sockets of slots given up (TTOU), still open until their worker has drained them.
    private var detached: Set<Int32> = []

    /// Per address: its Unix socket, one for every slot (SO_REUSEPORT is for TCP); nil for TCP.
    private var unixSockets: [Int32?] = []

    public init(addresses: [BindAddress], backlog: Int, unixMode: UInt32 = 0o660, unixOwner: Identity? = nil) throws {
        self.addresses = addresses
        self.backlog = Int32(min(backlog, Int(Int32.max)))
        unixSockets = Array(repeating: nil, count: addresses.count)
        // A plain bind first: it fails if anyone, including another mserve's SO_REUSEPORT group,
        // holds the port, where a SO_REUSEPORT bind would silently join that group.  It also turns
        // port 0 into the concrete free port every slot then shares.
        for i in self.addresses.indices {
            if let path = self.addresses[i].unixPath {
                do {
                    unixSockets[i] = try Socket.bindUnix(path: path, mode: unixMode, owner: unixOwner, backlog: self.backlog)
                } catch {
                    unixSockets.compactMap { $0 }.forEach(Socket.close)
                    throw error
                }
                continue
            }
            let probe = try Listeners.open(self.addresses[i], reusePort: false, backlog: nil)
            self.addresses[i].port = Listeners.localPort(probe)
            Socket.close(probe)
        }
        groups = Array(repeating: [], count: self.addresses.count)
    }

    /// Socket activation: serve the listening sockets systemd passed instead of binding.
    public init(inherited fds: [Int32], backlog: Int) {
        self.backlog = Int32(min(backlog, Int(Int32.max)))
        inherited = fds
        addresses = fds.map { Listeners.localAddress($0) }
        inheritedReusePort = fds.map { fd in
            Socket.hasReusePort(fd)
        }
        slots = [fds]
    }

    /// Whether the sockets came from systemd, and whether every slot gets its own.
    public var activationMode: String? {
        guard !inherited.isEmpty else { return nil }
        return inheritedReusePort.allSatisfy { $0 } ? "a SO_REUSEPORT socket per worker" : "one socket shared by the workers"
    }

    /// Opens sockets until `count` slots exist.  Only the first ones (at boot) listen here; a slot
    /// added later listens once its worker is forked (`listen(slot:)`).
    public func ensureSlots(_ count: Int, listening: Bool = false) throws {
        while slots.count < count {
            var fds: [Int32] = []
            for (i, a) in addresses.enumerated() {
                if !inherited.isEmpty && !inheritedReusePort[i] {
                    fds.append(inherited[i])
                    continue
                }
                if let unix = unixSockets.indices.contains(i) ? unixSockets[i] : nil {
                    fds.append(unix)
                    continue
                }
                do {
                    let fd = try Listeners.open(a, reusePort: true, backlog: listening ? backlog : nil)
                    fds.append(fd)
                    if listening { groups[i].append(fd) }
                } catch let error as SystemError where Listeners.mayShare(error) && !slots.isEmpty {
                    // No socket of its own (a privileged port after dropping privileges, or systemd's
                    // socket): this slot's worker accepts from the first slot's socket.
                    fds.append(slots[0][i])
                    sharing = "\(error); further workers share the first worker's socket on \(a)"
                } catch {
                    fds.filter { fd in !inherited.contains(fd) && !slots.contains { $0.contains(fd) } }.forEach(Socket.close)
                    throw error
                }
            }
            slots.append(fds)
        }
    }

    /// Makes a slot added after boot listen, once its worker is forked (so that a fork that fails
    /// leaves no socket the kernel queues connections on).
    public func listen(slot: Int) throws {
        for (i, fd) in slots[slot].enumerated() where !inherited.contains(fd) && !groups[i].contains(fd) && !unixSockets.contains(fd) {
            try Socket.listen(fd, backlog: backlog, named: addresses[i].description)
            groups[i].append(fd)
        }
    }

    /// Takes the highest slot, `slot`, out of service (never a socket systemd passed): it leaves the
    /// steering at once, and its sockets are returned, still open, for the caller to close once its
    /// workers have drained them.
    public func detachSlot(_ slot: Int) -> [Int32] {
        guard slot > 0, slot == slots.count - 1 else { return [] }
        // A socket another slot shares (or systemd's) stays.
        let fds = slots.removeLast().filter { fd in !inherited.contains(fd) && !slots.contains { $0.contains(fd) } }
        detached.formUnion(fds)
        return fds
    }

    /// Closes sockets of detached slots.
    public func closeDetached(_ fds: [Int32]) {
        for fd in fds where detached.remove(fd) != nil {
            for i in groups.indices {
                guard let at = groups[i].firstIndex(of: fd) else { continue }
                groups[i][at] = groups[i].last!
                groups[i].removeLast()
            }
            Socket.close(fd)
        }
    }

    /// Every socket this process holds apart from those of `slot` (what a worker of `slot` closes).
    func foreignFDs(of slot: Int) -> [Int32] {
        let mine = Set(slots[slot])
        return Array(Set(slots.flatMap { $0 }).union(detached).subtracting(mine))
    }

    /// Points each address's SO_REUSEPORT group at the sockets of the `serving` slots (all slots if
    /// none serves), never at a detached one.  Without sockets of our own (socket activation) there
    /// is nothing to steer.
    public func steer(serving: Set<Int>) throws {
        guard inherited.isEmpty, !slots.isEmpty else { return }
        let chosen = slots.indices.filter { serving.contains($0) }
        for i in addresses.indices where addresses[i].unixPath == nil {
            let indices = (chosen.isEmpty ? Array(slots.indices) : chosen).compactMap { groups[i].firstIndex(of: slots[$0][i]) }
            try ReuseportSteering.attach(to: slots[0][i], indices: indices, ipv6: addresses[i].host.contains(":"))
        }
    }

    public func closeAll() {
        Set(slots.flatMap { $0 }).union(detached).union(unixSockets.compactMap { $0 }).forEach(Socket.close)
        // A Unix socket's file goes with it, once (so that a later start does not find it).
        for (i, fd) in unixSockets.enumerated() where fd != nil { addresses[i].unixPath.map(Socket.unlinkUnix) }
        unixSockets = unixSockets.map { _ in nil }
        slots.removeAll()
        detached.removeAll()
        inherited.removeAll()
    }

    static func localAddress(_ fd: Int32) -> BindAddress {
        let (host, port) = Socket.localAddress(fd)
        return BindAddress(host: host, port: port)
    }

    static func localPort(_ fd: Int32) -> Int { Socket.localAddress(fd).port }

    /// Binding one more SO_REUSEPORT socket failed for want of privilege (a port below 1024) or
    /// because the group's sockets belong to another user (bound before privileges were dropped).
    static func mayShare(_ error: SystemError) -> Bool {
        error.errno == SystemError.permissionDenied || error.errno == SystemError.addressInUse
    }

    static func open(_ a: BindAddress, reusePort: Bool, backlog: Int32?) throws -> Int32 {
        try Socket.bind(host: a.host, port: a.port, named: a.description, reusePort: reusePort, backlog: backlog)
    }

    /// Whether the kernel moves the connections queued on a closing SO_REUSEPORT socket to another
    /// socket of its group (Linux 5.14+, net.ipv4.tcp_migrate_req); nil where it cannot say.
    static var migratesRequests: Bool? {
        (try? FileReading.bytes("/proc/sys/net/ipv4/tcp_migrate_req")).map { $0.first == UInt8(ascii: "1") }
    }

}
