import Testing

@testable import GGUFInference

/// Continuous batching, step by step, with no model: every rule of the scheduler.
struct BatchSchedulerTests {
    typealias W = BatchScheduler.Work

    @Test func decodesGoFirstAndPromptsFillTheRestOfTheStepInChunks() {
        var s = BatchScheduler(limits: .init(maxSequences: 4, kvTokens: 1000, stepTokens: 8))
        #expect(s.submit(id: 1, promptTokens: 5, maxNewTokens: 3) == .queued)
        #expect(s.submit(id: 2, promptTokens: 10, maxNewTokens: 3) == .queued)
        let first = s.nextStep()
        #expect(
            first == [
                W(id: 1, start: 0, tokens: 5, prefill: true, samples: true),
                W(id: 2, start: 0, tokens: 3, prefill: true, samples: false)
            ])
        s.completed(first)
        // 1 decodes its second token; 2's prompt goes on.
        let second = s.nextStep()
        #expect(
            second == [
                W(id: 1, start: 5, tokens: 1, prefill: false, samples: true),
                W(id: 2, start: 3, tokens: 7, prefill: true, samples: true)
            ])
        s.completed(second)
        let third = s.nextStep()
        #expect(
            third == [
                W(id: 1, start: 6, tokens: 1, prefill: false, samples: true),
                W(id: 2, start: 10, tokens: 1, prefill: false, samples: true)
            ])
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
        _ = t.submit(id: 2, promptTokens: 10, maxNewTokens: 10)  // 40 > 30: waits
        _ = t.submit(id: 3, promptTokens: 2, maxNewTokens: 2)  // would fit, but waits its turn
        #expect(t.nextStep().map(\.id) == [1])
        #expect(t.submit(id: 9, promptTokens: 20, maxNewTokens: 11) == .tooLong(needed: 31, capacity: 30))
    }

    @Test func aLeavingSequenceFreesItsPlaceForTheNextStep() {
        var s = BatchScheduler(limits: .init(maxSequences: 1, kvTokens: 100, stepTokens: 16))
        _ = s.submit(id: 1, promptTokens: 4, maxNewTokens: 50)
        _ = s.submit(id: 2, promptTokens: 4, maxNewTokens: 50)
        s.completed(s.nextStep())
        #expect(s.nextStep().map(\.id) == [1])
        s.remove(id: 1)  // the client left mid-stream
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
        #expect(
            step == [
                W(id: 1, start: 2, tokens: 1, prefill: false, samples: true),
                W(id: 2, start: 0, tokens: 3, prefill: true, samples: false)
            ])
    }

    /// A 4,000-token prompt read beside a decoding stream: every step holds the stream's token, and
    /// what each step costs stays within the budget wherever the prompt is (its chunks shrink as its
    /// attention grows), so the stream's inter-token gap is bounded by one step's cost.
    @Test func aLongPromptBesideAStreamIsReadInChunksOfBoundedCost() {
        let limits = BatchScheduler.Limits(maxSequences: 4, kvTokens: 10_000, stepTokens: 128, attentionSpan: 512)
        var s = BatchScheduler(limits: limits)
        _ = s.submit(id: 1, promptTokens: 10, maxNewTokens: 1000)
        s.completed(s.nextStep())
        _ = s.submit(id: 2, promptTokens: 4000, maxNewTokens: 1)
        var chunks: [Int] = []
        var steps = 0
        while s.runningCount == 2 || chunks.isEmpty {
            let step = s.nextStep()
            steps += 1
            #expect(step.first?.id == 1 && step.first?.prefill == false)
            let cost = step.reduce(0.0) { $0 + limits.cost($1.tokens, from: $1.start) }
            #expect(cost <= 128 + 0.001, "step \(steps) costs \(cost)")
            if let p = step.first(where: { $0.prefill }) { chunks.append(p.tokens) }
            s.completed(step)
            if steps > 1000 { break }
        }
        #expect(chunks.reduce(0, +) == 4000)
        // Early chunks are long, late ones short: at position 3,900 a token costs 8.6.
        #expect((chunks.first ?? 0) > 100 && (chunks.last ?? 0) < 16)
    }

    @Test func costAndChunkAgree() {
        let limits = BatchScheduler.Limits(maxSequences: 1, kvTokens: 100, stepTokens: 64, attentionSpan: 512)
        #expect(limits.cost(1, from: 0) == 1 && limits.cost(1, from: 512) == 2)
        for start in [0, 100, 1000, 5000] {
            for budget in [1.0, 10, 64, 256] {
                let n = limits.tokens(from: start, within: budget, limit: 10_000)
                #expect(limits.cost(n, from: start) <= budget && limits.cost(n + 1, from: start) > budget)
            }
        }
        // Without a span, tokens are the cost.
        let plain = BatchScheduler.Limits(maxSequences: 1, kvTokens: 100, stepTokens: 64)
        #expect(plain.tokens(from: 9000, within: 64, limit: 100) == 64)
    }

    /// So many streams decode that their tokens take the whole budget: a prompt still moves on by
    /// a small chunk each step rather than waiting for them all to end.
    @Test func aPromptIsNeverStarvedByDecodes() {
        let limits = BatchScheduler.Limits(maxSequences: 8, kvTokens: 100_000, stepTokens: 16, attentionSpan: 4)
        var s = BatchScheduler(limits: limits)
        for id in 1...6 { _ = s.submit(id: id, promptTokens: 20, maxNewTokens: 100) }
        for _ in 0..<100 { s.completed(s.nextStep()) }
        _ = s.submit(id: 9, promptTokens: 100, maxNewTokens: 1)
        let step = s.nextStep()
        // Six decodes at position ~40 cost 11 each, far over the budget of 16: the prompt gets 16 / 8.
        #expect(step.filter { !$0.prefill }.count == 6)
        #expect(step.last == W(id: 9, start: 0, tokens: 2, prefill: true, samples: false))
    }

    /// Backpressure: a held sequence (its client is not reading) decodes nothing and keeps its KV
    /// reservation; released, it goes on where it was.
    @Test func aHeldSequenceDecodesNothingUntilReleased() {
        var s = BatchScheduler(limits: .init(maxSequences: 4, kvTokens: 1000, stepTokens: 64))
        _ = s.submit(id: 1, promptTokens: 4, maxNewTokens: 10)
        _ = s.submit(id: 2, promptTokens: 4, maxNewTokens: 10)
        s.completed(s.nextStep())
        s.hold(id: 1, true)
        let held = s.nextStep()
        #expect(held.map(\.id) == [2] && s.kvReserved == 28)
        s.completed(held)
        s.hold(id: 1, false)
        #expect(
            s.nextStep() == [
                W(id: 1, start: 4, tokens: 1, prefill: false, samples: true),
                W(id: 2, start: 5, tokens: 1, prefill: false, samples: true)
            ])
        s.hold(id: 2, true)
        s.remove(id: 2)
        #expect(s.held.isEmpty)
    }

    /// The KV cache is reserved in whole blocks: 17 tokens take two blocks of 16, and a cache of
    /// 70 tokens holds four blocks (64 positions), not 70.
    @Test func reservationsAreWholeBlocks() {
        var s = BatchScheduler(limits: .init(maxSequences: 8, kvTokens: 70, stepTokens: 64, blockTokens: 16))
        #expect(s.submit(id: 1, promptTokens: 10, maxNewTokens: 7) == .queued)
        #expect(s.submit(id: 2, promptTokens: 20, maxNewTokens: 12) == .queued)
        #expect(s.submit(id: 3, promptTokens: 1, maxNewTokens: 1) == .queued)
        #expect(s.submit(id: 4, promptTokens: 60, maxNewTokens: 5) == .tooLong(needed: 65, capacity: 64))
        _ = s.nextStep()
        // 1 takes 32, 2 takes 32: the cache's 64 are reserved, and 3 (one block) waits.
        #expect(s.runningCount == 2 && s.kvReserved == 64 && s.waitingCount == 1)
        s.remove(id: 1)
        _ = s.nextStep()
        #expect(s.runningCount == 2 && s.kvReserved == 48)
    }

    /// n answers to one prompt: admitted together, the prompt read once by the first, the others
    /// joining with their first tokens when it is read; the prompt's whole blocks reserved once,
    /// for as long as any of them runs.
    @Test func severalAnswersShareOnePromptReading() {
        var s = BatchScheduler(limits: .init(maxSequences: 4, kvTokens: 160, stepTokens: 64, blockTokens: 16))
        // 40 prompt tokens (2 whole blocks shared) + 10 new: each answer 64 - 32 = 32 of its own.
        #expect(s.submit(id: 1, promptTokens: 40, maxNewTokens: 10, copies: 3) == .queued)
        #expect(s.submit(id: 4, promptTokens: 40, maxNewTokens: 30, copies: 4) == .tooLong(needed: 32 + 4 * 48, capacity: 160))
        #expect(s.submit(id: 4, promptTokens: 40, maxNewTokens: 10, copies: 5) == .tooManyCopies(limit: 4))
        #expect(s.submit(id: 9, promptTokens: 8, maxNewTokens: 8) == .queued)
        let first = s.nextStep()
        #expect(s.runningCount == 4 && s.kvReserved == 32 + 3 * 32 + 16)
        #expect(
            first == [
                W(id: 1, start: 0, tokens: 40, prefill: true, samples: true),
                W(id: 9, start: 0, tokens: 8, prefill: true, samples: true)
            ])
        s.completed(first)
        #expect(
            s.nextStep() == [
                W(id: 1, start: 40, tokens: 1, prefill: false, samples: true), W(id: 2, start: 40, tokens: 1, prefill: false, samples: true),
                W(id: 3, start: 40, tokens: 1, prefill: false, samples: true), W(id: 9, start: 8, tokens: 1, prefill: false, samples: true)
            ])
        // The leader ends first: the shared blocks stay reserved for the others.
        s.remove(id: 1)
        #expect(s.kvReserved == 32 + 2 * 32 + 16)
        s.remove(id: 2)
        s.remove(id: 3)
        #expect(s.kvReserved == 16 && s.groups.isEmpty)
    }

    /// A group waits whole while the batch has no room for all of it, and keeps its turn.
    @Test func aGroupIsAdmittedWholeOrWaits() {
        var s = BatchScheduler(limits: .init(maxSequences: 4, kvTokens: 1000, stepTokens: 64, blockTokens: 16))
        _ = s.submit(id: 1, promptTokens: 4, maxNewTokens: 4)
        _ = s.submit(id: 2, promptTokens: 4, maxNewTokens: 4, copies: 4)
        _ = s.submit(id: 6, promptTokens: 4, maxNewTokens: 4)
        _ = s.nextStep()
        #expect(s.runningCount == 1 && s.waitingCount == 5)
        s.remove(id: 1)
        _ = s.nextStep()
        #expect(s.runningCount == 4 && s.waitingCount == 1)
        // One answer: its first token is its last; the others are done with the same step.
        var t = BatchScheduler(limits: .init(maxSequences: 4, kvTokens: 1000, stepTokens: 64, blockTokens: 16))
        _ = t.submit(id: 1, promptTokens: 4, maxNewTokens: 1, copies: 2)
        #expect(Set(t.completed(t.nextStep())) == [1, 2] && t.runningCount == 0 && t.kvReserved == 0)
    }
}
