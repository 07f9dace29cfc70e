import MServeSystem
import Testing

/// Lines a full disk refuses are counted, never lost silently (/dev/full refuses every write).
@Suite struct LogFileTests {
    @Test func linesAFullDiskRefusesAreCounted() throws {
        let log = try LogFile(path: "/dev/full", standardFD: StandardStream.error)
        let counted = Locked(0)
        log.onDropped { n in counted.withLock { $0 += n } }
        log.append(Array("one line".utf8))
        log.append(Array("another".utf8))
        #expect(log.droppedBytes == "one line\n".utf8.count + "another\n".utf8.count)
        #expect(counted.withLock { $0 } == log.droppedBytes)
    }
}
