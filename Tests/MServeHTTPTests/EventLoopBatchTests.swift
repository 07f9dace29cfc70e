import MServeSystem
import Testing

/// The HTTP server sends the answers of a batch of events when the batch ends (HTTPServer.Outbox):
/// the loop must run that work after the batch's events, every time it handles a batch.
@Suite struct EventLoopBatchTests {
    @Test func batchEndWorkRunsAfterTheEventsOfEachBatch() throws {
        let loop = try EventLoop()
        var order: [String] = []
        loop.atBatchEnd { order.append("end") }
        let a = loop.userEvent { order.append("a") }
        let b = loop.userEvent { order.append("b") }
        a.activate()
        b.activate()
        loop.runOnce()
        #expect(order == ["a", "b", "end"])
        b.activate()
        loop.runOnce(waitingUpTo: 1)
        #expect(order == ["a", "b", "end", "b", "end"])
        withExtendedLifetime((a, b)) {}
    }

    @Test func runReturnsWhenStoppedWithItsLastBatchEnded() throws {
        let loop = try EventLoop()
        var ends = 0
        loop.atBatchEnd { ends += 1 }
        let stop = loop.userEvent { [unowned loop] in loop.stop() }
        stop.activate()
        loop.run()
        #expect(ends == 1)
        withExtendedLifetime(stop) {}
    }
}
