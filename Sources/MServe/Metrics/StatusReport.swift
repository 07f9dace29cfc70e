import MServeSystem

/// `/status.json`: the server as the status page shows it, read from the scoreboard by whichever
/// worker answers: its workers, each model's load and batches, restarts, and the last minutes'
/// requests per second and latency percentiles, second by second.
extension Scoreboard {
    package func statusReport(now: Double, seconds: Int = Scoreboard.recentSeconds) -> JSON {
        var live: [Int] = []
        var workers: [JSON] = []
        for r in 0..<Scoreboard.maxRecords {
            let rec = record(r)
            guard let s = State(rawValue: rec[Layout.state]), s != .free else { continue }
            live.append(r)
            let totals = workerTotals(r)
            workers.append([
                "pid": .int(Int64(rec[Layout.pid])), "slot": .int(Int64(rec[Layout.slot])), "state": .string("\(s)"),
                "age_s": .double(Scoreboard.round(max(0, now - Double(rec[Layout.started]) / 1000), 1)),
                "requests": .int(Int64(totals.requests)), "in_flight": .int(Int64(totals.inFlight))
            ])
        }
        workers.sort { ($0["slot"]?.doubleValue ?? 0, $0["pid"]?.doubleValue ?? 0) < ($1["slot"]?.doubleValue ?? 0, $1["pid"]?.doubleValue ?? 0) }
        let models: [JSON] = modelNames.enumerated().map { (i, name) in
            var c = Counts()
            for r in live + [Scoreboard.maxRecords] {
                let one = counts(r, model: i)
                c.requests &+= one.requests
                c.batches &+= one.batches
                c.batchInputs &+= one.batchInputs
                if r != Scoreboard.maxRecords {
                    c.running &+= one.running
                    c.waiting &+= one.waiting
                }
            }
            return [
                "name": .string(name), "requests": .int(Int64(c.requests)), "running": .int(Int64(c.running)),
                "queued": .int(Int64(c.waiting)), "batches": .int(Int64(c.batches)),
                "mean_batch": .double(c.batches == 0 ? 0 : Scoreboard.round(Double(c.batchInputs) / Double(c.batches), 2))
            ]
        }
        let restarts = RestartReason.allCases.map { ($0.label, JSON.int(Int64(self.restarts($0)))) }
        return [
            "ready": .bool(ready), "draining": .bool(draining), "workers": .array(workers), "models": .array(models),
            "restarts": .object(restarts), "recent": recent(now: now, seconds: seconds, records: live + [Scoreboard.maxRecords])
        ]
    }

    /// Oldest first, one entry per second up to the last complete one: its requests and the
    /// latency percentiles its histogram gives (bucket bounds, interpolated; null with no request).
    private func recent(now: Double, seconds: Int, records: [Int]) -> JSON {
        let last = UInt64(max(0, now))  // the current second is still filling: it is left out
        var points: [JSON] = []
        for ago in stride(from: min(seconds, Scoreboard.recentSeconds - 1), through: 1, by: -1) {
            guard last >= UInt64(ago) else { continue }
            let second = last - UInt64(ago) + 1
            var counts = [UInt64](repeating: 0, count: Layout.recentSlotWords - 2)
            var total: UInt64 = 0
            for r in records {
                let slot = record(r) + Layout.recent + Int(second % UInt64(Scoreboard.recentSeconds)) * Layout.recentSlotWords
                guard slot[0] == second else { continue }
                total &+= slot[1]
                for b in counts.indices { counts[b] &+= slot[2 + b] }
            }
            func ms(_ q: Double) -> JSON { total == 0 ? .null : .double(Scoreboard.round(Scoreboard.quantile(q, counts) * 1000, 2)) }
            points.append(["ago_s": .int(Int64(ago)), "requests": .int(Int64(total)), "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99)])
        }
        return ["seconds": .int(Int64(points.count)), "points": .array(points)]
    }

    /// The q-quantile of a histogram over `bounds` (+Inf last), interpolated within its bucket as
    /// Prometheus's histogram_quantile does; the +Inf bucket answers its lower bound.
    static func quantile(_ q: Double, _ counts: [UInt64], bounds: [Double] = recentBuckets) -> Double {
        let total = counts.reduce(0, &+)
        guard total > 0 else { return 0 }
        let rank = q * Double(total)
        var below: UInt64 = 0
        for (i, c) in counts.enumerated() {
            if Double(below + c) >= rank && c > 0 {
                guard i < bounds.count else { return bounds.last ?? 0 }
                let lower = i == 0 ? 0 : bounds[i - 1]
                return lower + (bounds[i] - lower) * (rank - Double(below)) / Double(c)
            }
            below += c
        }
        return bounds.last ?? 0
    }

    static func round(_ x: Double, _ digits: Int) -> Double {
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        return (x * p).rounded() / p
    }
}
