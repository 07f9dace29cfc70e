import MServeHTTP
import Testing

/// Each rule of when a connection is closed for time.
@Suite struct ConnectionTimeoutsTests {
    let t = ConnectionTimeouts(keepAlive: 5, client: 30, linger: 2)

    @Test func anIdleConnectionAfterARequestGetsTheKeepAlive() {
        let idle = ConnectionTimeouts.Activity(lastActivity: 100, idle: true, served: 1)
        #expect(!t.expired(idle, now: 105, serverClosing: false))
        #expect(t.expired(idle, now: 105.1, serverClosing: false))
    }

    @Test func aNewConnectionGetsTheClientTimeoutForItsFirstRequest() {
        let fresh = ConnectionTimeouts.Activity(lastActivity: 100, idle: true, served: 0)
        #expect(!t.expired(fresh, now: 129, serverClosing: false))
        #expect(t.expired(fresh, now: 130.1, serverClosing: false))
        // A stopping worker gives it only the keep-alive: its next request is answered, then closed.
        #expect(t.expired(fresh, now: 105.1, serverClosing: true))
    }

    @Test func aRequestThatDripsIsCutAClientTimeoutAfterItStarted() {
        // Bytes keep arriving (lastActivity moves), but the request began at 100: slowloris.
        let dripping = ConnectionTimeouts.Activity(lastActivity: 129.9, partialSince: 100)
        #expect(!t.expired(dripping, now: 130, serverClosing: false))
        #expect(t.expired(dripping, now: 130.1, serverClosing: false))
    }

    @Test func aBusyConnectionIsLeftToItsHandlersDeadline() {
        let busy = ConnectionTimeouts.Activity(lastActivity: 0, partialSince: 0, busy: true)
        #expect(!t.expired(busy, now: 10_000, serverClosing: true))
    }

    /// A stream whose client has taken nothing for the client timeout is closed (its model is
    /// paused meanwhile); one that takes slowly, or whose model is just slow, is not.
    @Test func aBusyConnectionWhoseClientStopsReadingGetsTheClientTimeout() {
        let stalled = ConnectionTimeouts.Activity(lastActivity: 0, busy: true, unsent: true)
        #expect(!t.expired(stalled, now: t.client - 1, serverClosing: false))
        #expect(t.expired(stalled, now: t.client + 1, serverClosing: false))
        let reading = ConnectionTimeouts.Activity(lastActivity: 100, busy: true, unsent: true)
        #expect(!t.expired(reading, now: 100 + t.client - 1, serverClosing: false))
    }

    @Test func lingeringIsBoundedByTheLingerAndTheClientTimeout() {
        let lingering = ConnectionTimeouts.Activity(lastActivity: 100, lingering: true)
        #expect(!t.expired(lingering, now: 102, serverClosing: false))
        #expect(t.expired(lingering, now: 102.1, serverClosing: false))
        let short = ConnectionTimeouts(keepAlive: 5, client: 1, linger: 2)
        #expect(short.expired(lingering, now: 101.1, serverClosing: false))
    }

    @Test func theSweepLooksFourTimesPerShortestLimitWithinBounds() {
        #expect(t.sweepPeriod == 1)
        #expect(ConnectionTimeouts(keepAlive: 0.4, client: 30).sweepPeriod == 0.1)
        #expect(ConnectionTimeouts(keepAlive: 0.01, client: 30).sweepPeriod == 0.05)
    }
}
