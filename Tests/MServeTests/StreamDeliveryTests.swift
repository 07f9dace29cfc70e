import MServeSystem
import Testing

@testable import MServe

/// A model thread's stream reaches the loop a few hundred pieces per turn (other clients are
/// answered in between), in order, all of them, then its result.
@Suite struct StreamDeliveryTests {
    final class Counter: Model, @unchecked Sendable {
        init(context: ModelContext) throws {}
        init() {}
        func infer(_ request: InferenceRequest) throws -> JSON { [:] }
        func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
            for i in 0..<5000 { try emit(.int(Int64(i))) }
        }
    }

    @Test func piecesComeAtMostABatchATurnInOrderThenTheResult() throws {
        let loop = try EventLoop()
        let served = ServedModel(name: "count", summary: "", device: "cpu", instance: Counter())
        let runner = try ModelRunner(model: served, runtime: ModelRuntime(concurrency: 1, queueSize: 4, requestTimeout: 30), loop: loop)
        var pieces: [Int64] = []
        var done = false
        let job = InferenceJob(request: InferenceRequest(recordID: "r", input: [:]), onPiece: { pieces.append($0.intValue ?? -1) }) { _ in
            done = true
        }
        #expect(runner.submit(job))
        var mostInATurn = 0
        for _ in 0..<20_000 where !done {
            let before = pieces.count
            loop.runOnce(waitingUpTo: 0.01)
            mostInATurn = max(mostInATurn, pieces.count - before)
        }
        #expect(done)
        #expect(pieces == (0..<5000).map { Int64($0) })
        #expect(mostInATurn > 0 && mostInATurn <= 256)
    }
}
