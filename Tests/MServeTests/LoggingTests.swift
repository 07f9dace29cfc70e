import MServeSystem
import Testing

@testable import MServe

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct LoggingTests {
    func tempPath() -> String {
        "/tmp/mserve-logtest-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
    }

    func read(_ path: String) throws -> String { try FileReading.text(path) }

    @Test func errorLineFormatWithRecordID() throws {
        let path = tempPath()
        defer { unlink(path) }
        let logger = Logger(file: try LogFile(path: path, standardFD: 2), level: .info)
        logger.info("request: POST /demo {}", recordID: "r1")
        logger.debug("hidden")
        let text = try read(path)
        let pattern = #/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4}\] \[(\d+)\] \[INFO\] \[r1\] request: POST /demo \{\}\n$/#
        let m = try #require(text.wholeMatch(of: pattern))
        #expect(Int32(m.1) == getpid())
    }

    @Test func controlCharactersCannotForgeLines() throws {
        let path = tempPath()
        defer { unlink(path) }
        let logger = Logger(file: try LogFile(path: path, standardFD: 2), level: .info)
        logger.info("a\nb\u{1b}[31m", recordID: "x\ny")
        let text = try read(path)
        #expect(text.split(separator: "\n").count == 1)
        #expect(text.contains(#"[x\ny] a\nb\x1b[31m"#))
    }

    @Test func accessLineFormat() throws {
        let path = tempPath()
        defer { unlink(path) }
        let log = AccessLog(file: try LogFile(path: path, standardFD: 1))
        log.log(
            .init(
                remoteHost: "127.0.0.1", method: "POST", target: "/demo?a=\"b\"", httpVersion: "HTTP/1.1",
                status: 200, bytes: 27, referer: nil, userAgent: "curl/7.88.1",
                durationSeconds: 0.000213, pid: 1234, recordID: "r1"))
        let text = try read(path)
        let pattern =
            #/^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "POST /demo\?a=\\"b\\" HTTP/1\.1" 200 27 "-" "curl/7\.88\.1" 0\.000213 pid=1234 rid=r1\n$/#
        #expect(text.wholeMatch(of: pattern) != nil, "\(text)")
    }

    /// A trace a caller began ends the line; the `trace` atom gives any request's.
    @Test func theTraceIdInTheAccessLine() throws {
        let path = tempPath()
        defer { unlink(path) }
        let log = AccessLog(file: try LogFile(path: path, standardFD: 1))
        var entry = AccessLog.Entry(
            remoteHost: "h", method: "GET", target: "/", httpVersion: "HTTP/1.1", status: 200, bytes: 2, referer: nil,
            userAgent: nil, durationSeconds: 0.1, pid: 7, recordID: "r", traceID: "4bf92f3577b34da6a3ce929d0e0e4736", traceContinued: true)
        log.log(entry)
        entry.traceContinued = false
        log.log(entry)
        log.log(entry, format: try AccessLogFormat(parsing: "%(rid)s %(trace)s"))
        let lines = try read(path).split(separator: "\n")
        #expect(lines.count == 3 && lines[0].hasSuffix("pid=7 rid=r trace=4bf92f3577b34da6a3ce929d0e0e4736") && lines[1].hasSuffix("pid=7 rid=r"))
        #expect(lines[2] == "r 4bf92f3577b34da6a3ce929d0e0e4736")
    }

    @Test func bufferedLinesWaitForTheFlushAndStayWhole() throws {
        let path = tempPath()
        defer { unlink(path) }
        let file = try LogFile(path: path, standardFD: 2)
        let scheduled = Counter()
        file.setScheduler { scheduled.increment() }
        let logger = Logger(file: file, level: .info)
        for i in 0..<100 { logger.info("line \(i)") }
        #expect(try read(path).isEmpty, "lines are written on flush, not per line")
        #expect(scheduled.value == 1, "one flush is scheduled for a burst of lines")
        file.flush()
        let lines = try read(path).split(separator: "\n")
        #expect(lines.count == 100)
        #expect(lines.last!.hasSuffix("line 99"))
    }

    @Test func overlongLinesAreCut() throws {
        let path = tempPath()
        defer { unlink(path) }
        let logger = Logger(file: try LogFile(path: path, standardFD: 2), level: .info)
        logger.info(String(repeating: "x", count: 100_000))
        let text = try read(path)
        #expect(text.utf8.count < LogFile.maxLine + 10)
        #expect(text.hasSuffix("...\n"))
    }

    @Test func durationFormatting() {
        #expect(AccessLog.formatSeconds(0.000213) == "0.000213")
        #expect(AccessLog.formatSeconds(1.5) == "1.500000")
    }
}

final class Counter: @unchecked Sendable {
    private(set) var value = 0
    func increment() { value += 1 }
}

@Suite struct AccessLogFormatTests {
    let entry = AccessLog.Entry(
        remoteHost: "10.0.0.1", method: "POST", target: "/demo?x=1", httpVersion: "HTTP/1.1", status: 200,
        bytes: 27, referer: nil, userAgent: "curl/8", durationSeconds: 0.001234, pid: 42, recordID: "r1",
        requestHeaders: [(name: "X-Forwarded-For", value: "1.2.3.4")], responseHeaders: [("Content-Type", "application/json")])

    func render(_ format: String, _ e: AccessLog.Entry? = nil) throws -> String {
        var line = ByteWriter()
        try AccessLogFormat(parsing: format, environment: ["STAGE": "prod"]).render(e ?? entry, into: &line) { $0.append("T") }
        return String(decoding: line.bytes(), as: UTF8.self)
    }

    @Test func gunicornAtoms() throws {
        #expect(
            try render(#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#)
                == #"10.0.0.1 - - [T] "POST /demo?x=1 HTTP/1.1" 200 27 "-" "curl/8""#)
        #expect(
            try render("%(m)s %(U)s %(q)s %(H)s %(B)s %(T)s %(M)s %(D)s %(L)s %(p)s %(rid)s 100%%")
                == "POST /demo x=1 HTTP/1.1 27 0 1 1234 0.001234 <42> r1 100%")
        #expect(
            try render("%({x-forwarded-for}i)s %({content-type}o)s %({missing}i)s %({STAGE}e)s")
                == "1.2.3.4 application/json - prod")
        var empty = entry
        empty.bytes = 0
        #expect(try render("%(b)s %(B)s", empty) == "- 0")
    }

    @Test func badFormatsAreConfigErrors() {
        #expect(throws: ConfigError("access_logformat: unknown atom %(zz)s (h l u t r m U q H s B b f a T M D L p rid {header}i {header}o {var}e)")) {
            try AccessLogFormat(parsing: "%(zz)s")
        }
        #expect(throws: ConfigError.self) { try AccessLogFormat(parsing: "%(h") }
    }
}
