#if canImport(Glibc)
    import Glibc
#endif

/// What Prometheus's standard `process_*` metrics report, for one process, from /proc.
public struct ProcessStats: Equatable, Sendable {
    public var cpuSeconds: Double
    public var residentBytes: Int
    public var virtualBytes: Int
    public var openFDs: Int
    /// Unix time the process started.
    public var startTime: Double

    /// Nil if the process is gone (or /proc cannot be read).
    public static func read(pid: Int32) -> ProcessStats? {
        guard let stat = try? FileReading.text("/proc/\(pid)/stat"),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after "(comm)": state is field 3; utime 14, stime 15, starttime 22, vsize 23, rss 24.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 22, let utime = Double(fields[11]), let stime = Double(fields[12]),
            let start = Double(fields[19]), let vsize = Int(fields[20]), let rss = Int(fields[21])
        else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        return ProcessStats(
            cpuSeconds: (utime + stime) / ticks, residentBytes: rss * page, virtualBytes: vsize,
            openFDs: countEntries("/proc/\(pid)/fd"), startTime: bootTime + start / ticks)
    }

    /// This process's parent (a worker's master).
    public static var parentPID: Int32 { getppid() }

    private static func countEntries(_ dir: String) -> Int { directoryEntries(dir).count }

    /// When the machine booted (Unix time), from /proc/stat's btime.
    private static var bootTime: Double {
        guard let text = try? FileReading.text("/proc/stat"),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let t = Double(line.dropFirst(6))
        else { return 0 }
        return t
    }
}
