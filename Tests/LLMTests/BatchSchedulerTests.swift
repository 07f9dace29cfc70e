import Testing
@testable import LLM

/// Continuous batching, step by step, with no model: every rule of the scheduler.
struct BatchSchedulerTests {
    typealias W = BatchScheduler.Work

    @Test func decodesGoFirstAndPromptsFillTheRestOfTheStepInChunks() {
        var s = BatchScheduler(limits: .init(maxSequences: 4, kvTokens: 1000, stepTokens: 8))
        #expect(s.submit(id: 1, promptTokens: 5, maxNewTokens: 3) == .queued)
        #expect(s.submit(id: 2, promptTokens: 10, maxNewTokens: 3) == .queued)
        let first = s.nextStep()
        #expect(first == [W(id: 1, start: 0, tokens: 5, prefill: true, samples: true),
                          W(id: 2, start: 0, tokens: 3, prefill: true, samples: false)])
        s.completed(first)
        // 1 decodes its second token; 2's prompt goes on.
        let second = s.nextStep()
        #expect(second == [W(id: 1, start: 5, tokens: 1, prefill: false, samples: true),
                           W(id: 2, start: 3, tokens: 7, prefill: true, samples: true)])
        s.completed(second)
        let third = s.nextStep()
        #expect(third == [W(id: 1, start: 6, tokens: 1, prefill: false, samples: true),
                          W(id: 2, start: 10, tokens: 1, prefill: false, samples: true)])
        // 1 has its 3 tokens: it leaves, and its KV with it.
        #expect(s.completed(third) == [1])
        #expect(s.runningCount == 1 && s.kvReserved == 13)
    }

    @Test func admissionIsBoundedBySequencesAndKVInArrivalOrder() {
        var s = BatchScheduler(limits: .init(maxSequences: 2, kvTokens: 30, stepTokens: 64))
        for id in 1...4 { _ = s.submit(id: id, promptTokens: 6, maxNewTokens: 4) }
        #expect(Set(s.nextStep().map(\.id)) == [1, 2] && s.waitingCount == 2)
        var t = BatchScheduler(limits: .init(maxSequences: 8, kvTokens: 30, stepTokens: 64))
        _ = t.submit(id: 1, promptTokens: 10, maxNewTokens: 10)
        _ = t.submit(id: 2, promptTokens: 10, maxNewTokens: 10)   // 40 > 30: waits
        _ = t.submit(id: 3, promptTokens: 2, maxNewTokens: 2)     // would fit, but waits its turn
        #expect(t.nextStep().map(\.id) == [1])
        #expect(t.submit(id: 9, promptTokens: 20, maxNewTokens: 11) == .tooLong(needed: 31, capacity: 30))
    }

    @Test func aLeavingSequenceFreesItsPlaceForTheNextStep() {
        var s = BatchScheduler(limits: .init(maxSequences: 1, kvTokens: 100, stepTokens: 16))
        _ = s.submit(id: 1, promptTokens: 4, maxNewTokens: 50)
        _ = s.submit(id: 2, promptTokens: 4, maxNewTokens: 50)
        s.completed(s.nextStep())
        #expect(s.nextStep().map(\.id) == [1])
        s.remove(id: 1)   // the client left mid-stream
        #expect(s.nextStep() == [W(id: 2, start: 0, tokens: 4, prefill: true, samples: true)])
        s.remove(id: 2)
        #expect(s.nextStep().isEmpty && s.kvReserved == 0)
    }

    @Test func requestsJoinBetweenSteps() {
        var s = BatchScheduler(limits: .init(maxSequences: 4, kvTokens: 100, stepTokens: 4))
        _ = s.submit(id: 1, promptTokens: 2, maxNewTokens: 10)
        s.completed(s.nextStep())
        _ = s.submit(id: 2, promptTokens: 6, maxNewTokens: 10)
        // One decode for 1, then 3 of 2's 6 prompt tokens: the budget is 4.
        let step = s.nextStep()
        #expect(step == [W(id: 1, start: 2, tokens: 1, prefill: false, samples: true),
                         W(id: 2, start: 0, tokens: 3, prefill: true, samples: false)])
    }
}
