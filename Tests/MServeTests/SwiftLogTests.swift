import Logging
import MServeSystem
import Testing

@testable import MServe

#if canImport(Glibc)
    import Glibc
#endif

/// swift-log bootstrapped into mserve's error log (SwiftLogHandler).
@Suite struct SwiftLogTests {
    /// swift-log's lines: mserve's levels and format, the serving request's recordid and the
    /// model's name (or the logger's label), metadata after the message; below the level, nothing.
    @Test func swiftLogLinesLandInTheErrorLog() throws {
        let path = "/tmp/mserve-swiftlog-\(UInt64.random(in: 0...UInt64.max)).log"
        defer { unlink(path) }
        let file = try LogFile(path: path, standardFD: 2)
        SwiftLogHandler.bootstrap(MServe.Logger(file: file, level: .info))
        let log = Logging.Logger(label: "mylib")
        ServingRequest.$current.withValue(ServingRequest(recordID: "r7", model: "wordcount")) {
            log.info("counted", metadata: ["words": "3"])
            log.debug("not shown")
        }
        log.warning("outside a request", metadata: ["recordid": "given"])
        log.notice("plain")
        file.flush()
        let lines = try FileReading.text(path).split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(lines)")
        #expect(lines.first?.hasSuffix("[INFO] [r7] wordcount: counted words=3") == true)
        #expect(lines.dropFirst().first?.hasSuffix("[WARNING] [given] mylib: outside a request") == true)
        #expect(lines.last?.hasSuffix("[INFO] mylib: plain") == true)
    }
}
