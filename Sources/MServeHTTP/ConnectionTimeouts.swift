/// When a connection is closed for time, decided from what it is doing and the time: a value with
/// no I/O, so that every rule is a unit test.
public struct ConnectionTimeouts: Equatable, Sendable {
    /// Idle between requests (--keep-alive).
    public var keepAlive: Double
    /// Sending a request or reading an answer (--client-timeout), and the whole of a request's head
    /// and body however steadily it drips (slowloris).
    public var client: Double
    /// Reading our answer after we shut our side down (lingering close).
    public var linger: Double

    public init(keepAlive: Double, client: Double, linger: Double = 2) {
        self.keepAlive = keepAlive
        self.client = client
        self.linger = linger
    }

    /// What the connection is doing, as the server's sweep sees it.
    public struct Activity: Equatable, Sendable {
        /// The last byte read or written.
        public var lastActivity: Double
        /// The first byte of a request that is not complete yet.
        public var partialSince: Double?
        /// A request is with a handler: its own deadline governs it, not these, unless the client
        /// stops reading what it answers (`unsent`).
        public var busy = false
        /// Output waits that the client has not taken.
        public var unsent = false
        /// Nothing in progress and nothing buffered either way.
        public var idle = false
        /// Requests answered on it.
        public var served = 0
        public var lingering = false

        public init(
            lastActivity: Double, partialSince: Double? = nil, busy: Bool = false, idle: Bool = false,
            served: Int = 0, lingering: Bool = false, unsent: Bool = false
        ) {
            self.unsent = unsent
            self.lastActivity = lastActivity
            self.partialSince = partialSince
            self.busy = busy
            self.idle = idle
            self.served = served
            self.lingering = lingering
        }
    }

    /// Whether the connection is past its time.  A connection that has not sent its first request
    /// gets the client timeout; one idle after a request, or any idle one of a stopping worker, the
    /// keep-alive (closing it at once would race a request the client may be sending that instant).
    public func expired(_ a: Activity, now: Double, serverClosing: Bool) -> Bool {
        // A stream to a client that takes nothing for the client timeout: its model is paused
        // (backpressure) and would otherwise hold a model thread and its memory for ever.
        if a.busy { return a.unsent && now - a.lastActivity > client }
        let limit = a.lingering ? min(linger, client) : a.idle && (a.served > 0 || serverClosing) ? keepAlive : client
        return now - a.lastActivity > limit || now - (a.partialSince ?? now) > client
    }

    /// How often the server looks: often enough to close within a quarter of the shortest limit.
    public var sweepPeriod: Double { min(1.0, max(0.05, min(client, keepAlive) / 4)) }
}
