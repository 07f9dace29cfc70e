import MServeSystem

/// Where a model's threads leave what they have for the requests they run, for the event loop: a
/// generative model's events (`GenerationMailbox`), its answers to llama.cpp's questions about it
/// (`/tokenize`, ...).  One of each per model in a worker.  Each request's handler opens a receiver
/// and gives the model the `post` closure that goes with it; the model posts from its thread, and
/// the loop hands each message to its receiver at its next turn.  No thread waits for a request:
/// the loop writes what it gets (OpenAI's chunks or mserve's pieces) straight to the connection.
package final class LoopMailbox<Message: Sendable>: @unchecked Sendable {  // `receivers` and `taken`: the loop's thread only
    private let posted = Locked<[(Int, Message)]>([])
    private var receivers: [Int: (Message) -> Void] = [:]
    private var nextID = 0
    /// Fired by the model's threads, for the first event posted since the loop last took them: a
    /// timer due at once, so that it runs after the loop has looked for I/O again.
    private let wake: EventHandle
    /// What the loop took and has not handed on yet: at most `deliveryBatch` a turn, so that a
    /// burst of events never holds the loop (and every other client) for long.
    private var taken: [(Int, Message)] = []
    private var takenStart = 0
    private static var deliveryBatch: Int { 256 }

    package init(loop: EventLoop) {
        let target = WeakMailbox<Message>()
        wake = loop.timer { target.mailbox?.deliver() }
        target.mailbox = self
    }

    /// Loop: a receiver for one request's events, its id (to close it) and the closure its model posts with.
    package func open(_ receiver: @escaping (Message) -> Void) -> (id: Int, post: @Sendable (Message) -> Void) {
        nextID += 1
        let id = nextID
        receivers[id] = receiver
        return (
            id,
            { [self] event in
                let first = posted.withLock { p in
                    p.append((id, event))
                    return p.count == 1
                }
                if first { wake.fireSoon() }
            }
        )
    }

    /// Loop: the request is answered (or given up); events still posted for it are dropped.
    package func close(_ id: Int) { receivers[id] = nil }

    /// Requests with a receiver open (for the tests: none is left behind).
    package var openCount: Int { receivers.count }

    private func deliver() {
        if takenStart == taken.count {
            taken = posted.withLock { p in
                defer { p.removeAll() }
                return p
            }
            takenStart = 0
        }
        let end = min(taken.count, takenStart + LoopMailbox.deliveryBatch)
        let ready = taken[takenStart..<end]
        takenStart = end
        if takenStart < taken.count || posted.withLock({ !$0.isEmpty }) { wake.fireSoon() }
        if takenStart == taken.count {
            taken.removeAll(keepingCapacity: true)
            takenStart = 0
        }
        for (id, event) in ready { receivers[id]?(event) }
    }
}

/// A generative model's events, for the requests it runs.
package typealias GenerationMailbox = LoopMailbox<GenerationEvent>

/// How the loop's wake-up event reaches its mailbox without a reference cycle.
private final class WeakMailbox<Message: Sendable> {
    weak var mailbox: LoopMailbox<Message>?
}
