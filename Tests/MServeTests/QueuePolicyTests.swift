import Testing

@testable import MServe

/// The queue and batching rules of one model, without threads.
@Suite struct QueuePolicyTests {
    func policy(concurrency: Int = 1, queue: Int = 4, maxBatch: Int = 8, timeout: Double = 0, batching: Bool = true) -> QueuePolicy {
        QueuePolicy(
            runtime: ModelRuntime(
                concurrency: concurrency, queueSize: queue, requestTimeout: 30, maxBatchSize: maxBatch,
                batchTimeout: timeout), batching: batching)
    }

    @Test func capacityIsThreadsPlusQueueAndTwoBatchesForABatchingModel() {
        #expect(policy(concurrency: 2, queue: 4, batching: false).capacity == 6)
        #expect(policy(concurrency: 2, queue: 4, maxBatch: 8).capacity == 18)
        #expect(policy(concurrency: 1, queue: 64, maxBatch: 8).capacity == 65)
        let p = policy(concurrency: 1, queue: 2, batching: false)
        #expect(p.admits(busyThreads: 1, waiting: 1))
        #expect(!p.admits(busyThreads: 1, waiting: 2))
    }

    @Test func queuedJobsJoinWhileTheyFit() {
        let p = policy(maxBatch: 8)
        #expect(p.next(cost: 3, firstStreams: false, candidate: (5, false), now: 0, deadline: 0) == .add)
        #expect(p.next(cost: 3, firstStreams: false, candidate: (6, false), now: 0, deadline: 0) == .run)
        #expect(p.next(cost: 8, firstStreams: false, candidate: (1, false), now: 0, deadline: 0) == .run)
    }

    @Test func streamsRunAloneAndDoNotJoin() {
        let p = policy()
        #expect(p.next(cost: 1, firstStreams: true, candidate: (1, false), now: 0, deadline: 0) == .run)
        #expect(p.next(cost: 1, firstStreams: false, candidate: (1, true), now: 0, deadline: 0) == .run)
    }

    @Test func anEmptyQueueIsWaitedOnUntilTheBatchTimeout() {
        let p = policy(timeout: 0.005)
        let deadline = p.deadline(startedAt: 10)
        #expect(deadline == 10.005)
        #expect(p.next(cost: 1, firstStreams: false, candidate: nil, now: 10.001, deadline: deadline) == .wait(until: 10.005))
        #expect(p.next(cost: 1, firstStreams: false, candidate: nil, now: 10.005, deadline: deadline) == .run)
        // Without a timeout a batch takes what is queued and goes.
        #expect(policy(timeout: 0).next(cost: 1, firstStreams: false, candidate: nil, now: 0, deadline: 0) == .run)
    }

    @Test func aModelThatDoesNotBatchRunsOneJob() {
        #expect(policy(batching: false).next(cost: 1, firstStreams: false, candidate: (1, false), now: 0, deadline: 1) == .run)
    }
}
