import Testing
@testable import MServe
import MServePOSIX
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
        log.log(.init(remoteHost: "127.0.0.1", method: "POST", target: "/demo?a=\"b\"", httpVersion: "HTTP/1.1",
                      status: 200, bytes: 27, referer: nil, userAgent: "curl/7.88.1",
                      durationSeconds: 0.000213, pid: 1234, recordID: "r1"))
        let text = try read(path)
        let pattern = #/^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "POST /demo\?a=\\"b\\" HTTP/1\.1" 200 27 "-" "curl/7\.88\.1" 0\.000213 pid=1234 rid=r1\n$/#
        #expect(text.wholeMatch(of: pattern) != nil, "\(text)")
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
