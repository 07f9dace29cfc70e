#if canImport(Glibc)
    import Glibc
#endif

/// The user and group a process runs as (gunicorn's --user and --group).
public struct Identity: Equatable, Sendable {
    public let uid: UInt32
    public let gid: UInt32

    /// A user by name or number, and a group by name or number (default: the user's own group).
    public static func lookup(user: String, group: String?) throws(SystemError) -> Identity {
        let uid: UInt32
        var gid: UInt32
        if let pw = getpwnam(user) {
            uid = pw.pointee.pw_uid
            gid = pw.pointee.pw_gid
        } else if let n = UInt32(user) {
            uid = n
            gid = getpwuid(n)?.pointee.pw_gid ?? n
        } else {
            throw SystemError("no such user: \(user)")
        }
        if let group {
            if let gr = getgrnam(group) {
                gid = gr.pointee.gr_gid
            } else if let n = UInt32(group) {
                gid = n
            } else {
                throw SystemError("no such group: \(group)")
            }
        }
        return Identity(uid: uid, gid: gid)
    }

    public static var current: Identity { Identity(uid: geteuid(), gid: getegid()) }

    /// Becomes this user and group for good (supplementary groups dropped); only root may.
    public func become() throws(SystemError) {
        var groups = [gid_t(gid)]
        guard setgroups(1, &groups) == 0 else { throw SystemError("setgroups", errno: errno) }
        guard setgid(gid) == 0 else { throw SystemError("setgid \(gid)", errno: errno) }
        guard setuid(uid) == 0 else { throw SystemError("setuid \(uid)", errno: errno) }
    }
}

/// Changes the working directory (gunicorn's --chdir).
public func changeDirectory(_ path: String) throws(SystemError) {
    guard chdir(path) == 0 else { throw SystemError("cannot change directory to \(path)", errno: errno) }
}
