/// The line HAProxy's `agent-check` reads from mserve's agent port (--agent-bind): the server's
/// state and a weight from its spare capacity, so that `balance leastconn` sends fewer new requests
/// to a busy host (FastChat's shortest-queue dispatch, done by a real balancer).
public struct AgentCheck: Equatable, Sendable {
    public enum State: Equatable, Sendable { case starting, ready, draining, stopping }

    public var state: State
    /// Requests the serving workers can run at once: every model's concurrency times the workers.
    public var capacity: Int
    public var running: Int
    public var queued: Int

    public init(state: State, capacity: Int, running: Int, queued: Int) {
        self.state = state
        self.capacity = capacity
        self.running = running
        self.queued = queued
    }

    /// 100% when idle, 50% with every slot running, less as requests queue; never 0, which would
    /// mean drain.  leastconn divides a server's connections by its weight.
    public var weightPercent: Int {
        guard capacity > 0 else { return 1 }
        let load = max(0, running) + max(0, queued)
        return max(1, Int((100 * Double(capacity) / Double(capacity + load)).rounded()))
    }

    /// HAProxy's agent words: `up`/`down` (operational state), `ready`/`drain` (administrative
    /// state), a weight in percent, and after `#` a text its stats page shows.
    public var answer: String {
        switch state {
        case .starting: return "down #starting\n"
        case .stopping: return "down #stopping\n"
        case .draining: return "up drain #draining\n"
        case .ready where capacity == 0: return "down #no serving workers\n"
        case .ready: return "up ready \(weightPercent)% #running \(running) queued \(queued) of \(capacity)\n"
        }
    }
}
