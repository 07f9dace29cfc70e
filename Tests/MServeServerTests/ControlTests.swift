import Testing

@testable import MServe
@testable import MServeServer

/// The control socket's pure parts: gunicornc's framing, the command words, the replies, and how
/// `mserve ctl` shows them.
struct ControlTests {
    static func frame(_ text: String) -> [UInt8] { ControlFrameDecoder.encode(Array(text.utf8)) }

    @Test func framesArriveWholeHoweverTheBytesAreSplit() throws {
        let bytes = Self.frame(#"{"command":"help"}"#) + Self.frame(#"{"command":"show stats"}"#)
        for cut in 0...bytes.count {
            var d = ControlFrameDecoder()
            var got: [String] = []
            for part in [bytes[..<cut], bytes[cut...]] {
                d.append(part)
                while let p = try d.next() { got.append(String(decoding: p, as: UTF8.self)) }
            }
            #expect(got == [#"{"command":"help"}"#, #"{"command":"show stats"}"#], "cut at \(cut)")
            #expect(d.pending == 0)
        }
    }

    @Test func aLengthOverTheLimitIsAnErrorBeforeItsBytesArrive() throws {
        var d = ControlFrameDecoder()
        d.append([0x7F, 0xFF, 0xFF, 0xFF])
        #expect(throws: ControlFrameError(length: 0x7FFF_FFFF)) { try d.next() }
        var ok = ControlFrameDecoder()
        ok.append(ControlFrameDecoder.encode([UInt8](repeating: 0x20, count: ControlFrameDecoder.maxPayload)))
        #expect(try ok.next()?.count == ControlFrameDecoder.maxPayload)
    }

    @Test func theFourByteLengthIsBigEndian() {
        #expect(ControlFrameDecoder.encode([UInt8](repeating: 1, count: 258)).prefix(4) == [0, 0, 1, 2])
    }

    @Test(arguments: [
        ("show workers", ControlCommand.showWorkers), ("SHOW  Stats", .showStats), ("show config", .showConfig),
        ("show listeners", .showListeners), ("show models", .showModels), ("worker add", .workerAdd(1)),
        ("worker add 3", .workerAdd(3)), ("worker remove", .workerRemove(1)), ("worker remove 2", .workerRemove(2)),
        ("worker kill 1234", .workerKill(1234)), ("reload", .reload), ("reopen", .reopen),
        ("shutdown", .shutdown(graceful: true)), ("shutdown graceful", .shutdown(graceful: true)),
        ("shutdown quick", .shutdown(graceful: false)), ("drain", .drain), ("undrain", .undrain),
        ("keys reload", .keysReload), ("help", .help)
    ])
    func commandsParse(text: String, command: ControlCommand) {
        #expect(ControlCommand.parse(text.split(separator: " ").map(String.init)) == .success(command))
    }

    @Test(arguments: [
        ("", "Unknown command: (empty); try help"), ("show", "Unknown command: show; try help"),
        ("show everything", "Unknown command: show everything; try help"), ("launch", "Unknown command: launch; try help"),
        ("worker add 0", "Invalid argument: expected a count from 1 to 64, got 0"),
        ("worker add two", "Invalid argument: expected a count from 1 to 64, got two"),
        ("worker add 1 2", "Invalid argument: expected a count from 1 to 64, got 1 2"),
        ("worker kill", "Invalid argument: worker kill takes one worker pid"),
        ("worker kill -5", "Invalid argument: worker kill takes one worker pid"),
        ("shutdown now", "Invalid argument: shutdown takes graceful or quick, got now"),
        ("reload everything", "Invalid argument: reload takes no arguments"),
        ("show workers please", "Invalid argument: show workers takes no arguments")
    ])
    func badCommandsSayWhy(text: String, error: String) {
        guard case .failure(let e) = ControlCommand.parse(text.split(separator: " ").map(String.init)) else {
            Issue.record("\(text) parsed")
            return
        }
        #expect(e.description == error)
    }

    @Test func requestsCarryTheirIdAndArgs() throws {
        let (id, words) = try #require(ControlCommand.request(Array(#"{"id": 7, "command": "worker add", "args": ["2"]}"#.utf8)))
        #expect(id == .int(7))
        #expect(words == ["worker", "add", "2"])
        #expect(ControlCommand.request(Array("garbage".utf8)) == nil)
        #expect(ControlCommand.request(Array(#"{"cmd": "help"}"#.utf8)) == nil)
        #expect(ControlCommand.request(Array(#"["help"]"#.utf8)) == nil)
    }

    @Test func repliesAreGunicorncShaped() throws {
        var d = ControlFrameDecoder()
        d.append(ControlReply.encode(id: .int(3), .success(["count": 1])))
        d.append(ControlReply.encode(id: .int(4), .failure(.unknownCommand("x"))))
        #expect(try d.next().map { String(decoding: $0, as: UTF8.self) } == #"{"id":3,"status":"ok","data":{"count":1}}"#)
        #expect(try d.next().map { String(decoding: $0, as: UTF8.self) } == #"{"id":4,"status":"error","error":"Unknown command: x; try help"}"#)
    }

    @Test func everyCommandHasASynopsisThatParses() {
        for (synopsis, _) in ControlCommand.synopses {
            let words = synopsis.split(separator: " ").map(String.init).filter { !$0.hasPrefix("[") && $0 != "PID" }
            let text = synopsis.contains("PID") ? words + ["1"] : words
            #expect((try? ControlCommand.parse(text).get()) != nil, "\(synopsis)")
        }
    }

    @Test func ctlShowsListsAsAlignedTables() {
        let data: JSON = ["workers": [["pid": 12, "state": "serving"], ["pid": 1234, "state": "booting"]], "count": 2]
        #expect(
            ControlClient.render(data) == """
                workers:
                  pid   state
                  12    serving
                  1234  booting
                count: 2

                """)
        let models: JSON = ["models": [["name": "demo", "requests": 3, "workers": [["pid": 5, "requests": 3]]]]]
        #expect(
            ControlClient.render(models) == """
                models:
                  name  requests
                  demo  3
                  demo workers:
                    pid  requests
                    5    3

                """)
    }
}
