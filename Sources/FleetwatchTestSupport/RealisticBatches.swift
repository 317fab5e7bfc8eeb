import FleetwatchProtocol

/// Batches shaped like a trading bot's: the reference system's metrics, values at realistic precision.
public enum RealisticBatches {
    /// The metric names a simulated bot reports (the reference README's list, plus extras up to `count`).
    public static func metricNames(_ count: Int) -> [(String, MetricKind)] {
        let base: [(String, MetricKind)] = [
            ("trades_executed", .counter), ("trades_failed", .counter), ("api_calls", .counter), ("api_errors", .counter),
            ("nonces_generated", .counter), ("nonce_failures", .counter), ("websocket_reconnects", .counter),
            ("success_rate", .gauge), ("total_pnl", .gauge), ("daily_pnl", .gauge), ("memory_usage_mb", .gauge),
            ("cpu_usage_percent", .gauge), ("log_file_size_mb", .gauge), ("websocket_latency_ms", .gauge),
            ("open_orders", .gauge), ("open_positions", .gauge), ("trade_execution_time", .duration),
            ("balance_check_time", .duration),
        ]
        return (0..<count).map { i in i < base.count ? base[i] : ("custom_metric_\(i)", i % 2 == 0 ? .gauge : .counter) }
    }

    /// `ticks` snapshots, one second apart, of `metrics` metrics starting at `startMs`.
    public static func payload(metrics: Int = 50, ticks: Int = 20, startMs: Int64, seed: UInt64 = 1) -> BatchPayload {
        var rng = seed == 0 ? 1 : seed
        func next() -> UInt64 { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng }
        func unit() -> Double { Double(next() % 1_000_000) / 1_000_000 }
        var out: [Series] = []
        for (i, (name, kind)) in metricNames(metrics).enumerated() {
            var ts: [Int64] = [], vs: [Double] = []
            var v = Double(next() % 500)
            for t in 0..<ticks {
                ts.append(startMs + Int64(t) * 1000 + Int64(next() % 4))
                switch kind {
                case .counter: v += Double(next() % 4)
                case .duration: v = (40 + unit() * 120).rounded(toPlaces: 2)
                default:
                    switch i % 4 {
                    case 0: v = (v + (unit() - 0.5) * 3).rounded(toPlaces: 2)           // PnL, cents
                    case 1: v = (150 + unit() * 2).rounded(toPlaces: 1)                 // memory MB
                    case 2: v = (unit() * 100).rounded(toPlaces: 2)                     // percentages
                    default: v = (30 + unit() * 40).rounded(toPlaces: 1)                // latency ms
                    }
                }
                vs.append(v)
            }
            out.append(Series(name: name, kind: kind, timestamps: ts, values: vs))
        }
        return BatchPayload(series: out)
    }
}

extension RealisticBatches {
    /// The same generator's `seconds` snapshots as consecutive batches of `ticksPerBatch` snapshots each (1: what a
    /// bot flushing every second sends).
    public static func stream(metrics: Int = 50, seconds: Int, ticksPerBatch: Int = 1, startMs: Int64,
                              seed: UInt64 = 1) -> [BatchPayload] {
        let all = payload(metrics: metrics, ticks: seconds, startMs: startMs, seed: seed)
        return stride(from: 0, to: seconds, by: ticksPerBatch).map { first in
            let r = first..<min(first + ticksPerBatch, seconds)
            return BatchPayload(series: all.series.map { s in
                Series(name: s.name, kind: s.kind, timestamps: Array(s.timestamps[r]), values: Array(s.values[r]))
            })
        }
    }
}

extension Double {
    func rounded(toPlaces p: Int) -> Double {
        let m = [1.0, 10, 100, 1000][p]
        return (self * m).rounded() / m
    }
}
