import MServeSystem
import Testing

@testable import MServe

#if canImport(Glibc)
    import Glibc
#endif

/// The model runner's dynamic batching, with a model that records the batches it is given and
/// holds its first one until the test lets it go.
@Suite(.serialized) struct BatchingTests {
    final class Recorder: BatchingModel, @unchecked Sendable {
        let lock = ConditionLock()
        var batches: [[String]] = []
        var held = true
        init(context: ModelContext) throws {}
        init() {}
        func batchCost(_ input: JSON) -> Int { Int(input["n"]?.doubleValue ?? 1) }
        func inferBatch(_ requests: [InferenceRequest]) -> [Result<JSON, any Error>] {
            lock.withLock {
                batches.append(requests.map(\.recordID))
                while held { lock.wait() }
            }
            return requests.map { .success(["id": .string($0.recordID)]) }
        }
        func release() {
            lock.withLock {
                held = false; lock.broadcast()
            }
        }
        var seen: [[String]] { lock.withLock { batches } }
    }

    func runner(_ model: Recorder, maxBatch: Int, timeout: Double, loop: EventLoop) throws -> ModelRunner {
        let served = ServedModel(name: "rec", summary: "", device: "cpu", instance: model)
        return try ModelRunner(
            model: served,
            runtime: ModelRuntime(
                concurrency: 1, queueSize: 16, requestTimeout: 30,
                maxBatchSize: maxBatch, batchTimeout: timeout), loop: loop)
    }

    func submit(_ r: ModelRunner, _ id: String, cost: Int, done: @escaping (String) -> Void) -> Bool {
        let job = InferenceJob(request: InferenceRequest(recordID: id, input: ["n": .int(Int64(cost))])) { result in
            if case .success(let v) = result { done(v["id"]!.stringValue!) }
        }
        job.cost = cost
        return r.submit(job)
    }

    func waitUntil(_ loop: EventLoop, _ condition: () -> Bool) {
        for _ in 0..<2000 where !condition() {
            loop.runOnce()
            usleep(1000)
        }
    }

    /// Queued requests go together while their inputs fit in the limit, in order; one larger than
    /// the limit runs alone; none is split.
    @Test func batchesFillUpToTheLimitByInputs() throws {
        let loop = try EventLoop()
        let model = Recorder()
        let r = try runner(model, maxBatch: 8, timeout: 0, loop: loop)
        var done: [String] = []
        #expect(submit(r, "a", cost: 1) { done.append($0) })
        waitUntil(loop) { model.seen.count == 1 }  // "a" runs alone and is held
        for (id, cost) in [("b", 3), ("c", 4), ("d", 2), ("e", 20)] {
            #expect(submit(r, id, cost: cost) { done.append($0) })
        }
        model.release()
        waitUntil(loop) { done.count == 5 }
        #expect(model.seen == [["a"], ["b", "c"], ["d"], ["e"]])
        #expect(Set(done) == ["a", "b", "c", "d", "e"])
    }

    /// With a batch timeout, a pass waits for requests that come soon after the first.
    @Test func aPassWaitsUpToTheBatchTimeout() throws {
        let loop = try EventLoop()
        let model = Recorder()
        model.held = false
        let r = try runner(model, maxBatch: 8, timeout: 0.5, loop: loop)
        var done: [String] = []
        #expect(submit(r, "f", cost: 1) { done.append($0) })
        #expect(submit(r, "g", cost: 1) { done.append($0) })
        waitUntil(loop) { done.count == 2 }
        #expect(model.seen == [["f", "g"]])
    }

    /// The queue of a batching model holds at least two full batches, whatever --queue-size says.
    @Test func theQueueHoldsTwoBatches() throws {
        let loop = try EventLoop()
        let model = Recorder()
        let served = ServedModel(name: "rec", summary: "", device: "cpu", instance: model)
        let r = try ModelRunner(
            model: served,
            runtime: ModelRuntime(
                concurrency: 1, queueSize: 2, requestTimeout: 30,
                maxBatchSize: 8, batchTimeout: 0), loop: loop)
        #expect(submit(r, "first", cost: 1) { _ in })
        waitUntil(loop) { model.seen.count == 1 }
        let accepted = (0..<20).filter { submit(r, "q\($0)", cost: 1) { _ in } }.count
        #expect(accepted == 16)
        model.release()
        waitUntil(loop) { r.load.running == 0 && r.load.waiting == 0 }
    }
}
