#if canImport(Glibc)
    import Glibc
#endif

/// A failed system call, with the errno text, for messages an operator can act on.
public struct SystemError: Error, CustomStringConvertible {
    public let message: String
    public let errno: Int32?

    public init(_ message: String, errno: Int32? = nil) {
        self.message = message
        self.errno = errno
    }

    public static let permissionDenied = EACCES
    public static let addressInUse = EADDRINUSE

    public var description: String {
        guard let errno else { return message }
        return "\(message): \(String(cString: strerror(errno)))"
    }
}
