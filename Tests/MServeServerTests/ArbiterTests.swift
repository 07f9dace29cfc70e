import MServeSystem
import Testing

@testable import MServe
@testable import MServeServer

/// The master's decisions, event by event, with no process forked: each rule of the arbiter.
struct ArbiterTests {
    static let limits = Arbiter.Limits(workers: 2, timeout: 30, bootTimeout: 10, gracefulTimeout: 30)

    /// Drives an arbiter the way `Master` does: a spawn is answered with `spawned` (pids 100, 101,
    /// ...) or, while `forkFails`, with `spawnFailed`, and what those return is appended.
    struct Harness {
        var arbiter: Arbiter
        var nextPid: Int32 = 100
        var forkFails = false
        var spawned: [(slot: Int, pid: Int32)] = []

        init(_ limits: Arbiter.Limits = ArbiterTests.limits) { arbiter = Arbiter(limits: limits) }

        mutating func send(_ event: Arbiter.Event) -> [Arbiter.Action] {
            var out: [Arbiter.Action] = []
            var pending = arbiter.handle(event)[...]
            while let a = pending.popFirst() {
                out.append(a)
                guard case .spawn(let slot) = a else { continue }
                if forkFails {
                    pending.append(contentsOf: arbiter.handle(.spawnFailed(slot: slot, at: time(event))))
                } else {
                    spawned.append((slot, nextPid))
                    pending.append(contentsOf: arbiter.handle(.spawned(slot: slot, pid: nextPid, at: time(event))))
                    nextPid += 1
                }
            }
            return out
        }

        func time(_ e: Arbiter.Event) -> Double {
            switch e {
            case .boot(let at), .spawned(_, _, let at), .spawnFailed(_, let at), .message(_, _, let at), .exited(_, _, let at),
                .tick(let at), .reload(_, let at), .scale(_, let at), .stop(_, let at), .replace(_, let at):
                return at
            case .reopenLogs: return 0
            }
        }

        /// Boots and makes every worker serve at time 1.
        mutating func serving() -> [Int32] {
            _ = send(.boot(at: 0))
            let pids = spawned.map(\.pid)
            for p in pids { _ = send(.message(pid: p, .serving, at: 1)) }
            return pids
        }
    }

    static func spawns(_ actions: [Arbiter.Action]) -> [Int] {
        actions.compactMap { if case .spawn(let s) = $0 { s } else { nil } }
    }
    static func signals(_ actions: [Arbiter.Action]) -> [Int32: Arbiter.Signal] {
        Dictionary(actions.compactMap { if case .signal(let p, let s) = $0 { (p, s) } else { nil } }, uniquingKeysWith: { $1 })
    }
    static func logs(_ actions: [Arbiter.Action]) -> [String] {
        actions.compactMap { if case .log(_, let m) = $0 { m } else { nil } }
    }

    @Test func bootSpawnsOneWorkerPerSlotAndIsReadyWhenAllServe() {
        var h = Harness()
        let boot = h.send(.boot(at: 0))
        #expect(Self.spawns(boot) == [0, 1])
        #expect(h.arbiter.phase == .booting)
        let first = h.send(.message(pid: 100, .serving, at: 1))
        #expect(!first.contains(.notify(.ready)))
        #expect(first.contains(.steer(serving: [0])))
        let second = h.send(.message(pid: 101, .serving, at: 1.5))
        #expect(second.contains(.notify(.ready)))
        #expect(Self.logs(second).contains("All 2 workers are serving"))
        #expect(h.arbiter.phase == .running)
    }

    @Test func aCrashedServingWorkerIsReplacedAtOnce() {
        var h = Harness()
        _ = h.serving()
        let out = h.send(.exited(pid: 100, .signaled(9), at: 5))
        #expect(Self.spawns(out) == [0])
        #expect(out.contains(.countRestart(.crashed)))
        #expect(h.spawned.last! == (0, 102))
    }

    @Test func aWorkerThatDiesBeforeServingIsRespawnedAfterABackOff() {
        var h = Harness()
        _ = h.send(.boot(at: 0))
        let out = h.send(.exited(pid: 100, .exited(1), at: 2))
        #expect(Self.spawns(out).isEmpty)
        #expect(Self.logs(out).contains("a worker died before serving; next start in 1 s"))
        #expect(h.arbiter.nextWake == 3)
        #expect(Self.spawns(h.send(.tick(at: 2.5))).isEmpty)
        #expect(Self.spawns(h.send(.tick(at: 3))) == [0])
    }

    @Test func exitCodeFourHaltsTheMaster() {
        var h = Harness()
        _ = h.send(.boot(at: 0))
        let out = h.send(.exited(pid: 100, .exited(ExitCode.modelLoadError), at: 2))
        #expect(h.arbiter.exitCode == ExitCode.modelLoadError)
        #expect(h.arbiter.phase == .stopping)
        #expect(Self.signals(out) == [101: .quit])
        #expect(Self.spawns(out).isEmpty)
        #expect(out.contains(.closeAllSockets))
        let last = h.send(.exited(pid: 101, .exited(0), at: 2.1))
        #expect(last.contains(.exitLoop))
        #expect(Self.logs(last) == ["Worker exiting (pid: 101): exited with code 0"])
    }

    @Test func exitCodeThreeHaltsWithItsCode() {
        var h = Harness()
        _ = h.send(.boot(at: 0))
        _ = h.send(.exited(pid: 101, .exited(ExitCode.workerBootError), at: 1))
        #expect(h.arbiter.exitCode == ExitCode.workerBootError)
    }

    @Test func aStuckWorkerGetsAbortThenKillTwoSecondsLater() {
        var h = Harness()
        _ = h.serving()
        var logs: [String] = []
        for t in stride(from: 2.0, through: 30, by: 1) { logs += Self.logs(h.send(.message(pid: 101, .heartbeat, at: t))) }
        // Three heartbeats missed: no new connections for it (steering), long before its timeout.
        #expect(logs == ["Worker (pid:100) has not beaten for 4.000 s; new connections go to the others until it does"])
        #expect(h.arbiter.nextWake == 31)  // worker 100 last heard at 1, timeout 30
        let late = h.send(.tick(at: 31))
        #expect(Self.signals(late) == [100: .abort])
        #expect(Self.logs(late) == ["WORKER TIMEOUT (pid:100)"])
        #expect(h.arbiter.nextWake == 33)
        #expect(Self.signals(h.send(.tick(at: 32.9))).isEmpty)
        #expect(Self.signals(h.send(.tick(at: 33))) == [100: .kill])
        let reaped = h.send(.exited(pid: 100, .signaled(9), at: 33.1))
        #expect(reaped.contains(.countRestart(.timeout)))
        #expect(Self.spawns(reaped) == [0])
    }

    @Test func bootTimeoutIsSeparateFromTheRunTimeout() {
        var h = Harness(Arbiter.Limits(workers: 1, timeout: 5, bootTimeout: 60, gracefulTimeout: 30))
        _ = h.send(.boot(at: 0))
        // Loading a model for 30 s is not a run timeout...
        #expect(Self.signals(h.send(.tick(at: 30))).isEmpty)
        // ...but not serving by the boot timeout is.
        let out = h.send(.tick(at: 60))
        #expect(Self.signals(out) == [100: .kill])  // one line, no backtrace
        #expect(Self.logs(out) == ["WORKER BOOT TIMEOUT (pid:100): not serving after 60.0 s"])
        // A "serving" that was already on its way does not count.
        #expect(!h.send(.message(pid: 100, .serving, at: 60.1)).contains { if case .steer = $0 { true } else { false } })
        #expect(h.send(.exited(pid: 100, .signaled(9), at: 60.5)).contains(.countRestart(.bootTimeout)))
    }

    @Test func threeBootTimeoutsInARowHaltWithExitCodeThree() {
        var h = Harness(Arbiter.Limits(workers: 1, timeout: 5, bootTimeout: 10, gracefulTimeout: 30))
        _ = h.send(.boot(at: 0))
        var t = 0.0
        for round in 0..<3 {
            t += 10
            _ = h.send(.tick(at: t))
            let exit = h.send(.exited(pid: 100 + Int32(round), .signaled(9), at: t + 0.1))
            if round < 2 {
                #expect(h.arbiter.phase != .stopping)
                t += 1.1
                _ = h.send(.tick(at: t))  // the respawn back-off
            } else {
                #expect(Self.logs(exit).contains("3 workers in a row did not serve within --boot-timeout (10.0 s); shutting down"))
                #expect(exit.contains(.exitLoop))
            }
        }
        #expect(h.arbiter.exitCode == ExitCode.workerBootError)
    }

    @Test func aWorkerThatServesResetsTheBootTimeoutCount() {
        var h = Harness(Arbiter.Limits(workers: 1, timeout: 5, bootTimeout: 10, gracefulTimeout: 30))
        _ = h.send(.boot(at: 0))
        _ = h.send(.tick(at: 10))
        _ = h.send(.exited(pid: 100, .signaled(9), at: 10.1))
        _ = h.send(.tick(at: 11.2))
        _ = h.send(.tick(at: 21.2))
        _ = h.send(.exited(pid: 101, .signaled(9), at: 21.3))
        _ = h.send(.tick(at: 22.4))
        _ = h.send(.message(pid: 102, .serving, at: 23))
        _ = h.send(.exited(pid: 102, .signaled(9), at: 24))  // crashed while serving: replaced at once
        _ = h.send(.tick(at: 34))
        let third = h.send(.exited(pid: 103, .signaled(9), at: 34.1))
        #expect(!third.contains(.exitLoop))
        #expect(h.arbiter.phase != .stopping)
    }

    @Test func ttouNeverGoesBelowOneWorkerAndDrainsTheSlotBeforeClosingIt() {
        var h = Harness()
        _ = h.serving()
        let down = h.send(.scale(by: -1, at: 5))
        #expect(Self.signals(down) == [101: .terminate])
        #expect(down.contains(.detachSlot(1, drain: 0)))
        #expect(!down.contains(.closeDrained(0)))
        #expect(down.contains(.steer(serving: [0])))
        let floor = h.send(.scale(by: -1, at: 6))
        #expect(floor == [.log(.info, "Keeping 1 worker (the minimum)")])
        let gone = h.send(.exited(pid: 101, .exited(0), at: 7))
        #expect(gone.contains(.closeDrained(0)))
        #expect(gone.contains(.countRestart(.scaledDown)))
        #expect(Self.spawns(gone).isEmpty)
        #expect(h.arbiter.openSlots == 1)
    }

    @Test func ttinAddsASlot() {
        var h = Harness()
        _ = h.serving()
        let up = h.send(.scale(by: 1, at: 5))
        #expect(Self.spawns(up) == [2])
        #expect(h.arbiter.openSlots == 3)
    }

    @Test func maxRequestsStartsTheReplacementFirst() {
        var h = Harness()
        _ = h.serving()
        let out = h.send(.message(pid: 100, .maxRequests, at: 5))
        #expect(Self.spawns(out) == [0])
        #expect(Self.signals(out).isEmpty)  // it drains by itself
        #expect(out.contains(.steer(serving: [1])))
        let exit = h.send(.exited(pid: 100, .exited(0), at: 6))
        #expect(exit.contains(.countRestart(.maxRequests)))
        #expect(Self.spawns(exit).isEmpty)
    }

    @Test func replaceDrainsTheWorkerWhileItsReplacementStarts() {
        var h = Harness()
        _ = h.serving()
        let out = h.send(.replace(pid: 101, at: 5))
        #expect(Self.spawns(out) == [1])
        #expect(Self.signals(out) == [101: .terminate])
        #expect(h.arbiter.spawnedCount == 3)
        // Twice, or an unknown pid: nothing more.
        #expect(h.send(.replace(pid: 101, at: 6)).isEmpty)
        #expect(h.send(.replace(pid: 999, at: 6)).isEmpty)
        let exit = h.send(.exited(pid: 101, .exited(0), at: 7))
        #expect(exit.contains(.countRestart(.replaced)))
        #expect(Self.spawns(exit).isEmpty)
        #expect(h.arbiter.desired == 2)
    }

    @Test func reloadIsCompleteWhenTheNewWorkersServe() {
        var h = Harness()
        let old = h.serving()
        let out = h.send(.reload(Self.limits, at: 10))
        #expect(out.first == .notify(.reloading))
        #expect(Self.spawns(out) == [0, 1])
        #expect(Self.signals(out) == [old[0]: .terminate, old[1]: .terminate])
        #expect(!h.send(.message(pid: 102, .serving, at: 11)).contains(.notify(.ready)))
        let done = h.send(.message(pid: 103, .serving, at: 11))
        #expect(done.contains(.notify(.ready)))
        #expect(Self.logs(done).contains("Reload complete: 2 workers serving"))
        #expect(h.send(.exited(pid: old[0], .exited(0), at: 12)).contains(.countRestart(.reload)))
    }

    /// A retired worker still busy after --retire-timeout (a stream to a client that does not read)
    /// is stopped (QUIT), and killed two seconds later if that does not end it.
    @Test func aRetiredWorkerStillBusyAfterTheRetireTimeoutIsStopped() {
        var limits = Self.limits
        limits.retireTimeout = 60
        var h = Harness(limits)
        let old = h.serving()
        _ = h.send(.reload(limits, at: 10))
        for p: Int32 in [102, 103] { _ = h.send(.message(pid: p, .serving, at: 11)) }
        // Its loop still beats: that alone never ends a retired worker's time.
        for t in stride(from: 20.0, through: 69, by: 10) {
            for p in old + [102, 103] { _ = h.send(.message(pid: p, .heartbeat, at: t)) }
            #expect(Self.signals(h.send(.tick(at: t))).isEmpty)
        }
        _ = h.send(.exited(pid: old[0], .exited(0), at: 65))
        let late = h.send(.tick(at: 70))
        #expect(Self.signals(late) == [old[1]: .quit])
        #expect(Self.logs(late).contains { $0.contains("retired 60.000 s ago and is still busy (--retire-timeout 60.0 s)") })
        for p in [old[1], 102, 103] { _ = h.send(.message(pid: p, .heartbeat, at: 71)) }
        // Killed if QUIT did not end it; the new workers are not touched.
        #expect(Self.signals(h.send(.tick(at: 72))) == [old[1]: .kill])
    }

    /// A worker that misses three heartbeats (stopped, stuck) leaves the steering, so new
    /// connections go to the others; it comes back when it beats again.  One alone stays.
    @Test func aLateWorkerTakesNoNewConnectionsUntilItBeatsAgain() {
        var h = Harness()
        let pids = h.serving()
        #expect(h.arbiter.nextWake == 4.001)  // heard at 1, heartbeats every second
        let late = h.send(.message(pid: pids[1], .heartbeat, at: 4.5))
        #expect(late.contains(.steer(serving: [1])))
        #expect(Self.logs(late) == ["Worker (pid:100) has not beaten for 3.500 s; new connections go to the others until it does"])
        #expect(h.send(.message(pid: pids[1], .heartbeat, at: 5)).isEmpty)
        let back = h.send(.message(pid: pids[0], .heartbeat, at: 6))
        #expect(back.contains(.steer(serving: [0, 1])))
        #expect(Self.logs(back) == ["Worker (pid:100) beats again; it takes new connections"])
        // Both late (the master itself was held up): every worker keeps taking them.
        let both = h.send(.tick(at: 10))
        #expect(!both.contains { if case .steer = $0 { true } else { false } })
        var one = Harness(Arbiter.Limits(workers: 1, timeout: 30, bootTimeout: 10, gracefulTimeout: 30))
        _ = one.serving()
        #expect(Self.logs(one.send(.tick(at: 10))).isEmpty)
    }

    @Test func reloadToFewerWorkersRetiresTheSlotsAbove() {
        var h = Harness(Arbiter.Limits(workers: 3, timeout: 30, bootTimeout: 10, gracefulTimeout: 30))
        _ = h.serving()
        let out = h.send(.reload(Self.limits, at: 10))
        #expect(Self.spawns(out) == [0, 1])
        #expect(out.contains(.detachSlot(2, drain: 0)))
        #expect(Set(Self.signals(out).keys) == [100, 101, 102])
    }

    @Test func aForkFailureIsRetriedOnceASecond() {
        var h = Harness()
        _ = h.serving()
        h.forkFails = true
        let up = h.send(.scale(by: 1, at: 5))
        #expect(Self.spawns(up) == [2])
        #expect(h.arbiter.nextWake == 6)
        #expect(Self.spawns(h.send(.tick(at: 5.5))).isEmpty)
        #expect(Self.spawns(h.send(.tick(at: 6))) == [2])
        h.forkFails = false
        #expect(Self.spawns(h.send(.tick(at: 7))) == [2])
        #expect(h.spawned.last! == (2, 102))
    }

    @Test func aReloadWhoseForksFailKeepsTheOldWorkers() {
        var h = Harness()
        _ = h.serving()
        h.forkFails = true
        let out = h.send(.reload(Self.limits, at: 10))
        #expect(Self.spawns(out) == [0, 1])
        #expect(Self.signals(out).isEmpty)
        #expect(Self.logs(out).contains("Reload: 2 new workers could not be started; their slots keep the old ones"))
        #expect(out.contains(.notify(.ready)))
        #expect(h.arbiter.nextWake == 31)  // the old workers' run timeout; no retry
    }

    @Test func gracefulStopKillsWhatIsLeftAtTheDeadline() {
        var h = Harness()
        _ = h.serving()
        let out = h.send(.stop(graceful: true, at: 10))
        #expect(Self.signals(out) == [100: .terminate, 101: .terminate])
        #expect(out.contains(.notify(.stopping)))
        #expect(h.send(.stop(graceful: true, at: 11)).isEmpty)
        _ = h.send(.exited(pid: 100, .exited(0), at: 12))
        _ = h.send(.message(pid: 101, .heartbeat, at: 39))  // draining, alive
        #expect(h.arbiter.nextWake == 40)
        let late = h.send(.tick(at: 40))
        #expect(Self.signals(late) == [101: .kill])
        #expect(Self.spawns(late).isEmpty)
        #expect(h.send(.exited(pid: 101, .signaled(9), at: 40.1)).contains(.exitLoop))
    }

    @Test func quickStopAfterGracefulShortensTheDeadline() {
        var h = Harness()
        _ = h.serving()
        _ = h.send(.stop(graceful: true, at: 10))
        let quick = h.send(.stop(graceful: false, at: 11))
        #expect(Self.signals(quick) == [100: .quit, 101: .quit])
        #expect(h.arbiter.nextWake == 16)
    }

    @Test func stopWithNoWorkersEndsTheLoop() {
        var h = Harness(Arbiter.Limits(workers: 1, timeout: 30, bootTimeout: 10, gracefulTimeout: 30))
        h.forkFails = true
        _ = h.send(.boot(at: 0))
        #expect(h.send(.stop(graceful: true, at: 1)).contains(.exitLoop))
    }

    @Test func usr1IsPassedToEveryWorker() {
        var h = Harness()
        _ = h.serving()
        #expect(h.send(.reopenLogs) == [.signal(pid: 100, .reopenLogs), .signal(pid: 101, .reopenLogs)])
    }

    @Test func workerMessagesDecodeWhatTheWorkerWrites() {
        let bytes = [WorkerMessage.serving, .heartbeat, .maxRequests].map(\.rawValue) + [0x7A]
        #expect(WorkerMessage.decode(bytes) == [.serving, .heartbeat, .maxRequests])
        #expect(WorkerMessage.serving.rawValue == UInt8(ascii: "R"))
    }
}

/// TERM while serving: a drain first (readiness 503, everything served, crashed workers replaced),
/// then the graceful stop.
struct ArbiterDrainTests {
    static let limits = Arbiter.Limits(workers: 2, timeout: 30, bootTimeout: 10, gracefulTimeout: 30, drainSeconds: 5)

    @Test func termDrainsForDrainSecondsThenStops() {
        var h = ArbiterTests.Harness(Self.limits)
        let pids = h.serving()
        let term = h.send(.stop(graceful: true, at: 10))
        #expect(term.contains(.notify(.draining)))
        #expect(!term.contains(.closeAllSockets))
        #expect(ArbiterTests.signals(term).isEmpty)
        #expect(h.arbiter.phase == .draining)
        #expect(h.arbiter.nextWake == 15)
        #expect(ArbiterTests.signals(h.send(.tick(at: 14.9))).isEmpty)
        let stop = h.send(.tick(at: 15))
        #expect(stop.contains(.closeAllSockets))
        #expect(stop.contains(.notify(.stopping)))
        #expect(ArbiterTests.signals(stop) == [pids[0]: .terminate, pids[1]: .terminate])
        #expect(h.arbiter.phase == .stopping)
    }

    @Test func aSecondTermOrAnIntCutsTheDrainShort() {
        var h = ArbiterTests.Harness(Self.limits)
        let pids = h.serving()
        _ = h.send(.stop(graceful: true, at: 10))
        let again = h.send(.stop(graceful: true, at: 11))
        #expect(ArbiterTests.signals(again) == [pids[0]: .terminate, pids[1]: .terminate])

        var q = ArbiterTests.Harness(Self.limits)
        let qp = q.serving()
        _ = q.send(.stop(graceful: true, at: 10))
        #expect(ArbiterTests.signals(q.send(.stop(graceful: false, at: 11))) == [qp[0]: .quit, qp[1]: .quit])
    }

    @Test func noDrainWhileBootingOrWithZeroSeconds() {
        var booting = ArbiterTests.Harness(Self.limits)
        _ = booting.send(.boot(at: 0))
        #expect(booting.send(.stop(graceful: true, at: 1)).contains(.closeAllSockets))

        var zero = ArbiterTests.Harness(ArbiterTests.limits)
        _ = zero.serving()
        #expect(zero.send(.stop(graceful: true, at: 5)).contains(.closeAllSockets))
    }

    @Test func whileDrainingCrashesAreReplacedAndReloadsAndScalingRefused() {
        var h = ArbiterTests.Harness(Self.limits)
        let pids = h.serving()
        _ = h.send(.stop(graceful: true, at: 10))
        #expect(h.send(.scale(by: 1, at: 11)).isEmpty)
        #expect(h.send(.reload(Self.limits, at: 11)).isEmpty)
        #expect(h.send(.replace(pid: pids[0], at: 11)).isEmpty)
        let crash = h.send(.exited(pid: pids[1], .signaled(9), at: 12))
        #expect(ArbiterTests.spawns(crash) == [1])
        // Its replacement serving does not make the server ready again.
        let serving = h.send(.message(pid: h.spawned.last?.pid ?? 0, .serving, at: 13))
        #expect(!serving.contains(.notify(.ready)))
        #expect(h.arbiter.phase == .draining)
    }

    @Test func aReloadInProgressWhenTermArrivesLeavesTheServerDraining() {
        var h = ArbiterTests.Harness(Self.limits)
        _ = h.serving()
        _ = h.send(.reload(Self.limits, at: 5))
        _ = h.send(.stop(graceful: true, at: 6))
        for (_, pid) in h.spawned.suffix(2) { _ = h.send(.message(pid: pid, .serving, at: 7)) }
        #expect(h.arbiter.phase == .draining)
        #expect(h.send(.tick(at: 11)).contains(.closeAllSockets))
    }
}
