import MServeTesting
import Testing

@testable import MServe

/// The connection timeouts as the server applies them, on TestServer's manual clock.
@Suite(.serialized) struct ConnectionTimeoutTests {
    let t: TestServer
    let client: Int32

    init() throws {
        var settings = Settings()
        settings.clientTimeout = 2
        settings.keepAlive = 1
        t = try TestServer(serving: ["demo"], settings: settings)
        let (serverEnd, clientEnd) = try Socket.pair()
        t.server.adopt(fd: serverEnd, remoteHost: "test")
        client = clientEnd
    }

    func send(_ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { Socket.send(client, $0) }
        for _ in 0..<5 { t.loop.runOnce() }
    }

    /// What the server has written since the last read; nil once it closed the connection.
    func received() -> String? {
        for _ in 0..<5 { t.loop.runOnce() }
        var buf = [UInt8](repeating: 0, count: 65536)
        switch buf.withUnsafeMutableBytes({ Socket.read(client, into: $0) }) {
        case .data(let n): return String(decoding: buf[0..<n], as: UTF8.self)
        case .wouldBlock: return ""
        case .end, .failed: return nil
        }
    }

    func sweep(after seconds: Double) {
        t.clock.advance(seconds)
        t.server.sweep(now: t.clock.now())
    }

    @Test func aRequestNotCompleteWithinTheClientTimeoutGets408ThenTheClose() throws {
        defer { Socket.close(client) }
        send("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        sweep(after: 1.9)
        #expect(received() == "")
        sweep(after: 0.2)
        let answer = try #require(received())
        #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(answer.contains("Connection: close") && answer.contains(#""code":408"#))
        #expect(t.server.openConnections == 1)  // lingering: the client may still be sending
        sweep(after: 2.1)
        #expect(t.server.openConnections == 0)
    }

    @Test func anIdleConnectionAfterARequestClosesAfterTheKeepAlive() throws {
        defer { Socket.close(client) }
        send("POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"cal_number\": 1}")
        #expect(received()?.hasPrefix("HTTP/1.1 200 OK") == true)
        sweep(after: 0.9)
        #expect(t.server.openConnections == 1)
        sweep(after: 0.2)
        #expect(t.server.openConnections == 0)
        #expect(received() == nil)
    }

    @Test func aConnectionThatNeverSendsGetsTheClientTimeoutAndNo408() throws {
        defer { Socket.close(client) }
        sweep(after: 1.5)
        #expect(t.server.openConnections == 1)  // not the keep-alive: it has not had a request yet
        sweep(after: 0.6)
        #expect(t.server.openConnections == 0)
        #expect(received() == nil)
    }
}
