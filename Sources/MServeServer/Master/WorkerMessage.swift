import MServe

/// What a worker tells the master through its pipe, one byte a message.  Both ends use this type,
/// so a message cannot be written in one spelling and read in another.
public enum WorkerMessage: UInt8, Sendable, CaseIterable {
    /// Its models are loaded and it accepts connections.
    case serving = 0x52  // "R"
    /// Its loop is alive (sent at least once a second); any message counts as one.
    case heartbeat = 0x48  // "H"
    /// It reached --max-requests and is draining: the master starts its replacement now.
    case maxRequests = 0x4D  // "M"

    /// The messages in what one read of the pipe returned; unknown bytes are skipped.
    public static func decode(_ bytes: some Sequence<UInt8>) -> [WorkerMessage] {
        bytes.compactMap(WorkerMessage.init(rawValue:))
    }
}
