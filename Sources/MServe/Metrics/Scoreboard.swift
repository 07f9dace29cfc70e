import MServeSystem

/// Shared memory, mapped by the master before its first fork, where every worker keeps its counters
/// and histograms and the master its restart counts and readiness, so that `/metrics` and `/readyz`
/// answer for the whole server whichever worker the request lands on (gunicorn's workers cannot).
///
/// Each worker process owns one record and is its only writer (from its event-loop thread), so
/// plain aligned 64-bit stores suffice; readers in other processes may see a count a moment old.
/// When a worker is reaped the master adds its record into the "retired" record and frees it, so
/// counters never go backwards.  Model names live in an append-only table, so a reload that changes
/// the models keeps each series under its name.
public final class Scoreboard: @unchecked Sendable {
    static let maxRecords = 64
    static let maxModels = 16
    /// How far back the status page's charts go, and their latency buckets (finer than the
    /// histograms' at the low end, where a fast model's requests all fall).
    package static let recentSeconds = 300
    static let recentBuckets: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1, 2.5, 5, 10, 30
    ]
    /// Status codes with a series of their own; others count as "other".
    static let codes = [200, 400, 404, 405, 413, 415, 499, 500, 503, 504]
    /// Histogram upper bounds in seconds (then +Inf).
    static let buckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    enum Histogram: Int, CaseIterable { case request, queue, inference, firstToken, interToken }
    public enum RestartReason: Int, CaseIterable, Sendable {
        case crashed, timeout, bootTimeout, maxRequests, reload, scaledDown, replaced
        package var label: String {
            switch self {
            case .crashed: return "died"
            case .timeout: return "timeout"
            case .bootTimeout: return "boot_timeout"
            case .maxRequests: return "max_requests"
            case .reload: return "reload"
            case .scaledDown: return "scaled_down"
            case .replaced: return "replaced"
            }
        }
    }
    package enum State: UInt64 { case free = 0, booting, ready, stopping }

    /// Where each value lives, in 64-bit words.  The header: the ready flag, the number of model
    /// names, the draining flag, a restart counter per reason, the name table.  Then `maxRecords`
    /// records and the retired one, each: state, pid, in flight, slot, start time, then per model
    /// (`maxModels`, plus one for requests to no model) the status-code counters, the three
    /// histograms, a batching model's passes and the inputs they took, and the inferences running
    /// and waiting; then the last `recentSeconds` seconds, each: its second (monotonic, plus one;
    /// 0: empty), requests answered, and their latency histogram.
    enum Layout {
        static let ready = 0
        static let modelCount = 1
        static let draining = 2
        static func restarts(_ reason: RestartReason) -> Int { 3 + reason.rawValue }
        /// Bytes of log lines that could not be written, by any process (added atomically).
        static let logBytesDropped = 3 + RestartReason.allCases.count
        static let names = logBytesDropped + 1
        static let headerWords = names + SharedNames.words(capacity: maxModels)

        static let state = 0
        static let pid = 1
        static let inFlight = 2
        static let slot = 3
        /// Monotonic seconds when the master forked it.
        static let started = 4
        static let firstModel = 5
        static let codeWords = codes.count + 1
        /// In a histogram: the buckets, +Inf, then the sum (µs) and the count.
        static let histogramWords = buckets.count + 1 + 2
        static let histogramSum = buckets.count + 1
        static let histogramCount = buckets.count + 2
        static func histogram(_ h: Histogram) -> Int { codeWords + h.rawValue * histogramWords }
        static let batches = codeWords + Histogram.allCases.count * histogramWords
        static let batchInputs = batches + 1
        /// Generative models' counters: tokens read and written; prompt tokens looked up in the
        /// prefix cache and found there.  Counters come before `running`: a reaped worker's are
        /// summed into the retired record.
        static let promptTokens = batches + 2
        static let generatedTokens = batches + 3
        static let prefixQueried = batches + 4
        static let prefixHit = batches + 5
        /// Gauges (not summed into the retired record): inferences running and waiting for a thread.
        static let running = batches + 6
        static let waiting = batches + 7
        /// Generative models: sequences running and waiting in the engine, and the KV cache's
        /// tokens in use and in all (gauges).
        static let sequencesRunning = batches + 8
        static let sequencesWaiting = batches + 9
        static let kvUsed = batches + 10
        static let kvCapacity = batches + 11
        /// The engine's own running totals of the prefix counters, as last copied (the counters
        /// above grow by what these grew).
        static let prefixQueriedSeen = batches + 12
        static let prefixHitSeen = batches + 13
        static let modelWords = batches + 14
        static let recent = firstModel + (maxModels + 1) * modelWords
        static let recentSlotWords = 2 + recentBuckets.count + 1
        static let recordWords = recent + recentSeconds * recentSlotWords
        /// A model's words within a record (nil: requests to no model).
        static func model(_ m: Int?) -> Int { firstModel + (m ?? maxModels) * modelWords }
    }

    private let memory: SharedMemory
    private let base: UnsafeMutablePointer<UInt64>
    /// API keys' limits and counts, and signed requests' nonces, in mappings of their own.
    public let keys: KeyLimiter
    public let nonces: NonceLog

    public init() throws {
        memory = try SharedMemory(size: (Layout.headerWords + (Scoreboard.maxRecords + 1) * Layout.recordWords) * 8)
        base = memory.base.bindMemory(to: UInt64.self, capacity: memory.size / 8)
        keys = try KeyLimiter()
        nonces = try NonceLog()
    }

    func record(_ r: Int) -> UnsafeMutablePointer<UInt64> {
        base + Layout.headerWords + r * Layout.recordWords
    }

    // MARK: master

    package var ready: Bool {
        get { base[Layout.ready] == 1 }
        set { base[Layout.ready] = newValue ? 1 : 0 }
    }

    /// `drain` on the control socket: readiness answers 503 while requests are still served.
    package var draining: Bool {
        get { base[Layout.draining] == 1 }
        set { base[Layout.draining] = newValue ? 1 : 0 }
    }

    /// The index of a model's series, adding its name if new (master only, before forking workers).
    @discardableResult
    package func register(model name: String) -> Int? {
        var known = nameTable.names
        return nameTable.index(adding: name, known: &known)
    }

    private var nameTable: SharedNames {
        SharedNames(count: base + Layout.modelCount, slots: UnsafeMutableRawPointer(base + Layout.names), capacity: Scoreboard.maxModels)
    }

    package func index(of name: String) -> Int? {
        modelNames.firstIndex(of: name)
    }

    package var modelNames: [String] { nameTable.names }

    /// A free record for a worker about to be forked, or nil if all are taken (it then goes uncounted).
    package func claim() -> Int? {
        for r in 0..<Scoreboard.maxRecords where record(r)[Layout.state] == State.free.rawValue {
            let rec = record(r)
            rec.update(repeating: 0, count: Layout.recordWords)
            rec[Layout.state] = State.booting.rawValue
            return r
        }
        return nil
    }

    package func setWorker(_ r: Int, pid: Int32, slot: Int, started: Double) {
        let rec = record(r)
        rec[Layout.pid] = UInt64(UInt32(bitPattern: pid))
        rec[Layout.slot] = UInt64(max(0, slot))
        rec[Layout.started] = UInt64(max(0, started * 1000))
    }

    /// A reaped worker's counts go into the retired record; its record is free again.
    package func release(_ r: Int) {
        keys.releaseWorker(r)
        let rec = record(r)
        let retired = record(Scoreboard.maxRecords)
        for m in 0...Scoreboard.maxModels {
            let m0 = Layout.firstModel + m * Layout.modelWords
            for w in m0..<(m0 + Layout.running) { retired[w] &+= rec[w] }
        }
        // Its recent seconds too, so that the charts do not dip when a worker is replaced.
        for i in 0..<Scoreboard.recentSeconds {
            let from = rec + Layout.recent + i * Layout.recentSlotWords
            let to = retired + Layout.recent + i * Layout.recentSlotWords
            guard from[0] != 0, from[0] >= to[0] else { continue }
            if from[0] > to[0] {
                to.update(from: from, count: Layout.recentSlotWords)
            } else {
                for w in 1..<Layout.recentSlotWords { to[w] &+= from[w] }
            }
        }
        rec.update(repeating: 0, count: Layout.recordWords)
    }

    package func countRestart(_ reason: RestartReason) { base[Layout.restarts(reason)] &+= 1 }

    /// From any process (several may fail to write at once).
    package func countLogBytesDropped(_ n: Int) { SharedAtomic.add(base + Layout.logBytesDropped, Int64(n)) }

    // MARK: worker (its own record only)

    package func setState(_ r: Int, _ s: State) { record(r)[Layout.state] = s.rawValue }
    func setInFlight(_ r: Int, _ n: Int) { record(r)[Layout.inFlight] = UInt64(max(0, n)) }

    private func modelBase(_ r: Int, _ model: Int?) -> UnsafeMutablePointer<UInt64> {
        record(r) + Layout.model(model)
    }

    /// A request answered at monotonic time `now`, after `seconds`.
    func countRequest(_ r: Int, model: Int?, status: Int, seconds: Double, now: Double) {
        let m = modelBase(r, model)
        m[Scoreboard.codes.firstIndex(of: status) ?? Scoreboard.codes.count] &+= 1
        observe(r, model: model, .request, seconds)
        let second = UInt64(max(0, now)) + 1
        let slot = record(r) + Layout.recent + Int(second % UInt64(Scoreboard.recentSeconds)) * Layout.recentSlotWords
        if slot[0] != second {
            slot.update(repeating: 0, count: Layout.recentSlotWords)
            slot[0] = second
        }
        slot[1] &+= 1
        slot[2 + (Scoreboard.recentBuckets.firstIndex { seconds <= $0 } ?? Scoreboard.recentBuckets.count)] &+= 1
    }

    func observe(_ r: Int, model: Int?, _ h: Histogram, _ seconds: Double) {
        let p = modelBase(r, model) + Layout.histogram(h)
        let b = Scoreboard.buckets.firstIndex { seconds <= $0 } ?? Scoreboard.buckets.count
        p[b] &+= 1
        p[Layout.histogramSum] &+= UInt64(max(0, seconds * 1_000_000))
        p[Layout.histogramCount] &+= 1
    }

    /// A model's inferences running on its threads and waiting in its queue, in this worker.
    package func setModelLoad(_ r: Int, model: Int?, running: Int, waiting: Int) {
        let m = modelBase(r, model)
        m[Layout.running] = UInt64(max(0, running))
        m[Layout.waiting] = UInt64(max(0, waiting))
    }

    /// A generative model's request done: the tokens of its prompt and those it generated.
    func countTokens(_ r: Int, model: Int?, prompt: Int, generated: Int) {
        let m = modelBase(r, model)
        m[Layout.promptTokens] &+= UInt64(max(0, prompt))
        m[Layout.generatedTokens] &+= UInt64(max(0, generated))
    }

    /// A generative model's engine now, in this worker.
    package func setGenerationLoad(_ r: Int, model: Int?, _ load: GenerationLoad) {
        let m = modelBase(r, model)
        m[Layout.sequencesRunning] = UInt64(max(0, load.running))
        m[Layout.sequencesWaiting] = UInt64(max(0, load.waiting))
        m[Layout.kvUsed] = UInt64(max(0, load.kvTokensUsed))
        m[Layout.kvCapacity] = UInt64(max(0, load.kvTokens))
        for (counter, seen, now) in [
            (Layout.prefixQueried, Layout.prefixQueriedSeen, load.prefixQueriedTokens),
            (Layout.prefixHit, Layout.prefixHitSeen, load.prefixHitTokens)
        ] {
            let total = UInt64(max(0, now))
            if total > m[seen] { m[counter] &+= total - m[seen] }
            m[seen] = total
        }
    }

    /// One forward pass of a batching model, and the inputs it took.
    package func countBatch(_ r: Int, model: Int?, inputs: Int) {
        let m = modelBase(r, model)
        m[Layout.batches] &+= 1
        m[Layout.batchInputs] &+= UInt64(max(0, inputs))
    }

    // MARK: reading (any process)

    /// What one worker's record holds for one model (nil: requests to no model), or summed over all.
    package struct Counts: Equatable, Sendable {
        package var requests: UInt64 = 0
        package var running: UInt64 = 0
        package var waiting: UInt64 = 0
        package var batches: UInt64 = 0
        package var batchInputs: UInt64 = 0

        package init(requests: UInt64 = 0, running: UInt64 = 0, waiting: UInt64 = 0, batches: UInt64 = 0, batchInputs: UInt64 = 0) {
            self.requests = requests
            self.running = running
            self.waiting = waiting
            self.batches = batches
            self.batchInputs = batchInputs
        }
    }

    package func counts(_ r: Int, model: Int?) -> Counts {
        let m = modelBase(r, model)
        return Counts(
            requests: (0..<Layout.codeWords).reduce(0) { $0 &+ m[$1] }, running: m[Layout.running],
            waiting: m[Layout.waiting], batches: m[Layout.batches], batchInputs: m[Layout.batchInputs])
    }

    /// Requests a worker answered (every model and none) and how many it has in flight.
    package func workerTotals(_ r: Int) -> (requests: UInt64, inFlight: UInt64) {
        let requests = ([nil] + (0..<Scoreboard.maxModels).map(Optional.some)).reduce(UInt64(0)) { $0 &+ counts(r, model: $1).requests }
        return (requests, record(r)[Layout.inFlight])
    }

    /// Requests answered by workers that are gone.
    package var retiredRequests: UInt64 { workerTotals(Scoreboard.maxRecords).requests }

    package func restarts(_ reason: RestartReason) -> UInt64 { base[Layout.restarts(reason)] }

    /// The Prometheus text exposition of everything, summed over live and retired workers.
    /// The pids of the live workers.
    var workerPIDs: [Int32] {
        (0..<Scoreboard.maxRecords).compactMap { r in
            guard let s = State(rawValue: record(r)[Layout.state]), s != .free, record(r)[Layout.pid] != 0 else { return nil }
            return Int32(bitPattern: UInt32(truncatingIfNeeded: record(r)[Layout.pid]))
        }
    }

    /// Prometheus's standard process metrics, for the server as a whole: the master and its live
    /// workers summed (CPU, memory, descriptors), the master's start time.
    static func processText(master: Int32, workers: [Int32]) -> String {
        let all = ([master] + workers).compactMap { ProcessStats.read(pid: $0) }
        guard let first = ProcessStats.read(pid: master) ?? all.first else { return "" }
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        metric(
            "process_cpu_seconds_total", "counter", "User and system CPU seconds of the master and its live workers.",
            "\(all.reduce(0) { $0 + $1.cpuSeconds })")
        metric(
            "process_resident_memory_bytes", "gauge", "Resident memory of the master and its live workers (shared pages counted in each).",
            "\(all.reduce(0) { $0 + $1.residentBytes })")
        metric(
            "process_virtual_memory_bytes", "gauge", "Virtual memory of the master and its live workers.",
            "\(all.reduce(0) { $0 + $1.virtualBytes })")
        metric(
            "process_open_fds", "gauge", "Open file descriptors of the master and its live workers.",
            "\(all.reduce(0) { $0 + $1.openFDs })")
        metric("process_start_time_seconds", "gauge", "When the master started (Unix time).", "\(first.startTime)")
        return out
    }

    /// `byKey`: with the series by API key name (a scrape that carried a valid key).
    func prometheusText(byKey: Bool) -> String {
        var live: [Int] = []
        var states: [State: Int] = [:]
        var inFlight: UInt64 = 0
        for r in 0..<Scoreboard.maxRecords {
            guard let s = State(rawValue: record(r)[Layout.state]), s != .free else { continue }
            live.append(r)
            states[s, default: 0] += 1
            inFlight += record(r)[Layout.inFlight]
        }
        let sources = live + [Scoreboard.maxRecords]
        func sum(_ offset: Int) -> UInt64 { sources.reduce(0) { $0 &+ record($1)[offset] } }
        let names = modelNames
        var out = ""
        out += "# HELP mserve_requests_total Requests answered, by model (\"-\" for other routes) and status.\n"
        out += "# TYPE mserve_requests_total counter\n"
        for (mi, name) in (Array(names.enumerated().map { ($0.offset, $0.element) }) + [(Scoreboard.maxModels, "-")]) {
            let m0 = Layout.model(mi)
            for (ci, code) in (Scoreboard.codes.map(String.init) + ["other"]).enumerated() {
                let v = sum(m0 + ci)
                if v > 0 { out += "mserve_requests_total{model=\"\(name)\",code=\"\(code)\"} \(v)\n" }
            }
        }
        let histograms: [(Histogram, String, String)] = [
            (.request, "mserve_request_duration_seconds", "Time from a complete request to its answer."),
            (.queue, "mserve_queue_wait_seconds", "Time requests waited for a model thread."),
            (.inference, "mserve_inference_duration_seconds", "Time a model spent on a request."),
            (.firstToken, "mserve_time_to_first_token_seconds", "Generative models: time from a complete request to its first token."),
            (.interToken, "mserve_inter_token_latency_seconds", "Generative models: time between two tokens of a request.")
        ]
        for (h, metric, help) in histograms {
            out += "# HELP \(metric) \(help)\n# TYPE \(metric) histogram\n"
            for (mi, name) in (Array(names.enumerated().map { ($0.offset, $0.element) }) + [(Scoreboard.maxModels, "-")]) {
                let h0 = Layout.model(mi) + Layout.histogram(h)
                let count = sum(h0 + Layout.histogramCount)
                guard count > 0 else { continue }
                var cumulative: UInt64 = 0
                for (bi, le) in Scoreboard.buckets.enumerated() {
                    cumulative &+= sum(h0 + bi)
                    out += "\(metric)_bucket{model=\"\(name)\",le=\"\(le)\"} \(cumulative)\n"
                }
                out += "\(metric)_bucket{model=\"\(name)\",le=\"+Inf\"} \(count)\n"
                out += "\(metric)_sum{model=\"\(name)\"} \(Double(sum(h0 + Layout.histogramSum)) / 1e6)\n"
                out += "\(metric)_count{model=\"\(name)\"} \(count)\n"
            }
        }
        let batchSeries: [(String, String, Int, String)] = [
            ("mserve_batches_total", "Forward passes of batching models.", Layout.batches, "counter"),
            ("mserve_batch_inputs_total", "Inputs those passes took (over mserve_batches_total: the mean batch).", Layout.batchInputs, "counter"),
            ("mserve_prompt_tokens_total", "Generative models: prompt tokens of the requests done.", Layout.promptTokens, "counter"),
            ("mserve_generated_tokens_total", "Generative models: tokens generated for the requests done.", Layout.generatedTokens, "counter"),
            ("mserve_sequences_running", "Generative models: sequences in the engine's steps now.", Layout.sequencesRunning, "gauge"),
            (
                "mserve_sequences_waiting", "Generative models: sequences waiting for room in the KV cache or the batch.", Layout.sequencesWaiting,
                "gauge"
            ),
            ("mserve_kv_cache_tokens_used", "Generative models: KV cache tokens reserved by the sequences now.", Layout.kvUsed, "gauge"),
            ("mserve_kv_cache_tokens", "Generative models: KV cache tokens in all (--kv-cache-tokens, per worker).", Layout.kvCapacity, "gauge"),
            ("mserve_prefix_cache_queries_total", "Generative models: prompt tokens looked up in the prefix cache.", Layout.prefixQueried, "counter"),
            ("mserve_prefix_cache_hits_total", "Generative models: prompt tokens found there (their KV not computed).", Layout.prefixHit, "counter")
        ]
        for (metric, help, word, type) in batchSeries {
            out += "# HELP \(metric) \(help)\n# TYPE \(metric) \(type)\n"
            for (mi, name) in names.enumerated() {
                let v = sum(Layout.model(mi) + word)
                // A gauge of a generative model (one with a KV cache) shows its zeros too.
                let generative = sum(Layout.model(mi) + Layout.kvCapacity) > 0
                if v > 0 || (type == "gauge" && generative) { out += "\(metric){model=\"\(name)\"} \(v)\n" }
            }
        }
        out += "# HELP mserve_requests_in_flight Requests being handled now.\n# TYPE mserve_requests_in_flight gauge\n"
        out += "mserve_requests_in_flight \(inFlight)\n"
        out += "# HELP mserve_workers Worker processes by state.\n# TYPE mserve_workers gauge\n"
        for (s, label) in [(State.booting, "booting"), (.ready, "ready"), (.stopping, "stopping")] {
            out += "mserve_workers{state=\"\(label)\"} \(states[s] ?? 0)\n"
        }
        out +=
            "# HELP mserve_draining 1 while the server drains (`mserve ctl drain`, TERM with --drain-seconds): /readyz 503, requests still served.\n"
            + "# TYPE mserve_draining gauge\nmserve_draining \(draining ? 1 : 0)\n"
        out += "# HELP mserve_worker_restarts_total Workers replaced, by reason.\n# TYPE mserve_worker_restarts_total counter\n"
        for reason in RestartReason.allCases {
            out += "mserve_worker_restarts_total{reason=\"\(reason.label)\"} \(base[Layout.restarts(reason)])\n"
        }
        out +=
            "# HELP mserve_log_bytes_dropped_total Bytes of log lines that could not be written (a full disk).\n"
            + "# TYPE mserve_log_bytes_dropped_total counter\nmserve_log_bytes_dropped_total \(SharedAtomic.load(base + Layout.logBytesDropped))\n"
        // Read in a worker, the master is its parent.
        out += Scoreboard.processText(master: ProcessStats.parentPID, workers: workerPIDs)
        if byKey { out += keys.prometheusText() }
        return out
    }
}
