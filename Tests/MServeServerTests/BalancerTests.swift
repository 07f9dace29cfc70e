import Testing

@testable import MServe
@testable import MServeServer

/// What mserve tells HAProxy: the agent-check line, and the runtime-API commands of --announce.
struct AgentCheckTests {
    @Test func anIdleServerIsReadyAtFullWeight() {
        #expect(AgentCheck(state: .ready, capacity: 4, running: 0, queued: 0).answer == "up ready 100% #running 0 queued 0 of 4\n")
    }

    @Test func theWeightFallsAsSlotsFillAndRequestsQueue() {
        let weights = [(0, 0), (2, 0), (4, 0), (4, 4), (4, 400)].map {
            AgentCheck(state: .ready, capacity: 4, running: $0.0, queued: $0.1).weightPercent
        }
        #expect(weights == [100, 67, 50, 33, 1])
    }

    @Test func statesOtherThanReady() {
        #expect(AgentCheck(state: .starting, capacity: 0, running: 0, queued: 0).answer == "down #starting\n")
        #expect(AgentCheck(state: .draining, capacity: 4, running: 1, queued: 0).answer == "up drain #draining\n")
        #expect(AgentCheck(state: .stopping, capacity: 4, running: 0, queued: 0).answer == "down #stopping\n")
        #expect(AgentCheck(state: .ready, capacity: 0, running: 0, queued: 0).answer == "down #no serving workers\n")
    }
}

struct AnnouncementTests {
    @Test func theURLNamesTheRuntimeAPIAndTheBackend() throws {
        let a = try Announcement(url: "haproxy://10.0.0.1:9999/mserve", server: nil, address: "10.0.0.11:8000", agentPort: nil, options: nil)
        #expect(a.apiHost == "10.0.0.1" && a.apiPort == 9999 && a.backend == "mserve")
        #expect(a.server == "mserve-10-0-0-11-8000")
        #expect(a.addCommand == "add server mserve/mserve-10-0-0-11-8000 10.0.0.11:8000 check inter 1s fall 2 rise 2 weight 100")
        #expect(a.enableCommands == ["enable health mserve/mserve-10-0-0-11-8000", "set server mserve/mserve-10-0-0-11-8000 state ready"])
        #expect(a.takeOverCommands.first == "set server mserve/mserve-10-0-0-11-8000 addr 10.0.0.11 port 8000")
        #expect(a.drainCommand == "set server mserve/mserve-10-0-0-11-8000 state drain")
        #expect(a.removeCommands.last == "del server mserve/mserve-10-0-0-11-8000")
    }

    @Test func theAgentPortAddsTheAgentCheck() throws {
        let a = try Announcement(url: "haproxy://[::1]:9999/b", server: "h1", address: "[::1]:8000", agentPort: 8001, options: nil)
        #expect(a.apiHost == "::1")
        #expect(a.addCommand == "add server b/h1 [::1]:8000 check inter 1s fall 2 rise 2 weight 100 agent-check agent-port 8001 agent-inter 1s")
        #expect(a.enableCommands.contains("enable agent b/h1"))
        #expect(a.takeOverCommands.first == "set server b/h1 addr ::1 port 8000")
    }

    @Test(arguments: ["http://h:1/b", "haproxy://h/b", "haproxy://h:0/b", "haproxy://h:1/", "haproxy://h:1/a b", "haproxy://:1/b"])
    func badURLsAreRefused(_ url: String) {
        #expect(throws: ConfigError.self) { try Announcement(url: url, server: nil, address: "1.2.3.4:5", agentPort: nil, options: nil) }
    }

    @Test func answersThatMeanFailure() {
        #expect(Announcement.failure(in: "") == nil)
        #expect(Announcement.failure(in: "New server registered.\n") == nil)
        #expect(Announcement.failure(in: "Server deleted.\n\n") == nil)
        #expect(Announcement.failure(in: "No such backend.\n") == "No such backend.")
    }

    @Test func theAnnouncedAddressIsASpecificOne() throws {
        var s = ServerSettings()
        s.announce = "haproxy://127.0.0.1:9999/mserve"
        s.binds = ["0.0.0.0:8000"]
        #expect(throws: ConfigError.self) { try s.announcement() }
        s.announceAddress = "10.0.0.11:8000"
        #expect(try s.announcement()?.address == "10.0.0.11:8000")
        s.announceAddress = nil
        s.binds = ["127.0.0.1:8000"]
        s.agentBind = "127.0.0.1:0"
        #expect(throws: ConfigError.self) { try s.announcement() }
        s.agentBind = "127.0.0.1:8001"
        #expect(try s.announcement()?.options.hasSuffix("agent-port 8001 agent-inter 1s") == true)
    }
}
