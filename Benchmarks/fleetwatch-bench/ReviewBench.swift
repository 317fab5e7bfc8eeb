import ArgumentParser
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO

/// The weekly review at scale: a week of data for `bots` bots at one sample per metric every 5 s, rolled up,
/// then the weekly summary (`fleetwatch_review('week', …)`, what `report weekly` and `review_bot_week` run)
/// timed; plus the storage cost per raw sample for two batch shapes.
struct ReviewBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "review", abstract: "Weekly summary time and bytes per raw sample.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Bots.") var bots = 100
    @Option(help: "Days of data.") var days = 7
    @Option(help: "Seconds between the samples of one metric.") var sampleSeconds = 5
    @Option(help: "Summary runs to time.") var runs = 20

    static let metrics: [(String, String)] = [
        ("trades_executed", "counter"), ("trades_failed", "counter"), ("api_calls", "counter"), ("api_errors", "counter"),
        ("nonce_failures", "counter"), ("websocket_reconnects", "counter"), ("total_pnl", "gauge"), ("daily_pnl", "gauge"),
        ("memory_usage_mb", "gauge"), ("success_rate", "gauge"),
    ]

    func run() async throws {
        let logger = { var l = Logger(label: "bench"); l.logLevel = .warning; return l }()
        let names = (1...bots).map { "review-bot-\($0)" }
        let db = try await BenchDatabase.create(server: databaseURL, bots: names, token: "t", logger: logger)
        let weekStart = WeeklyReview.weekStart(of: Date().addingTimeInterval(-7 * 86_400))
        let perMinute = 60 / sampleSeconds
        let (bots, days, sampleSeconds, runs) = (self.bots, self.days, self.sampleSeconds, self.runs)
        let metrics = Self.metrics
        try await db.withClient(logger: logger) { client in
            for (name, kind) in metrics {
                try await client.query("INSERT INTO metrics (name, kind) VALUES (\(name), \(kind)) ON CONFLICT DO NOTHING", logger: logger)
            }
            var ids: [Int32] = []
            for (name, _) in metrics {
                ids.append(try await client.query("SELECT id FROM metrics WHERE name = \(name)", logger: logger).decode(Int32.self).first { _ in true }!)
            }
            // One samples row per bot and minute (`perMinute` ticks of every metric), tick-major.
            let mids = (0..<perMinute).flatMap { _ in ids }
            let offsets = (0..<perMinute).flatMap { t in [Int32](repeating: Int32(t * sampleSeconds * 1000), count: ids.count) }
            print("generating \(bots) bots × \(days) days, one sample per metric every \(sampleSeconds) s (\(metrics.count) metrics)…")
            let started = ContinuousClock.now
            for d in 0..<days {
                let day = weekStart.addingTimeInterval(Double(d) * 86_400)
                try await client.query("SELECT fleetwatch_ensure_sample_partition(\(day)::date)", logger: logger)
                try await client.query("""
                    INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals)
                    SELECT b.id, \(day) + m * interval '1 minute', 1, \(d * 1440) + m + 1, \(mids)::int4[], \(offsets)::int4[],
                           ARRAY(SELECT CASE k
                                   WHEN 0 THEN n * 2 WHEN 1 THEN floor(n / 9.0) WHEN 2 THEN n * 5 WHEN 3 THEN floor(n / 700.0)
                                   WHEN 4 THEN floor(n / 5000.0) WHEN 5 THEN floor(n / 40000.0)
                                   WHEN 6 THEN round((100 * sin(n / 900.0 + b.id) + b.id)::numeric, 2)
                                   WHEN 7 THEN round((20 * sin(n / 300.0 + b.id))::numeric, 2)
                                   WHEN 8 THEN 200 + b.id % 50 + (n % 720) / 10.0
                                   ELSE 95 - (b.id % 7) END
                                 FROM generate_series(0, \(perMinute - 1)) t, generate_series(0, \(metrics.count - 1)) k,
                                      LATERAL (SELECT (\(d * 1440) + m) * \(perMinute) + t AS n) x
                                 ORDER BY t, k)
                    FROM bots b CROSS JOIN generate_series(0, 1439) m
                    """, logger: logger)
            }
            try await client.query("ANALYZE samples", logger: logger)
            let rawSamples = Int64(bots) * Int64(days) * 1440 * Int64(perMinute) * Int64(metrics.count)
            print("generated \(rawSamples) samples in \(started.duration(to: .now))")

            let rollupStart = ContinuousClock.now
            for d in 0..<days {
                let from = weekStart.addingTimeInterval(Double(d) * 86_400)
                try await client.query("SELECT fleetwatch_rollup(\(from), \(from.addingTimeInterval(86_400)))", logger: logger)
            }
            let rollupTime = rollupStart.duration(to: .now)
            try await client.query("ANALYZE rollup_1m", logger: logger)
            try await client.query("ANALYZE rollup_1h", logger: logger)
            let rate = Double(rawSamples) / rollupTime.inSeconds
            report("rollups of the whole range (1-minute and 1-hour)", Double(rollupTime.components.seconds), "s")
            report("rollup throughput", rate, "raw samples/s")

            // The weekly summary, as `monitor-hub report weekly` runs it.
            let review = WeeklyReview(client: client, logger: logger)
            let week = WeeklyReview.isoWeek(weekStart)
            var times: [Double] = []
            var rows = 0
            for _ in 0..<runs {
                let t0 = ContinuousClock.now
                let r = try await review.report(week: week, bot: nil)
                let (s, a) = t0.duration(to: .now).components
                times.append(Double(s) * 1000 + Double(a) / 1e15)
                rows = r.bots.count
            }
            times.sort()
            print("weekly summary: \(rows) bots, \(runs) runs")
            report("weekly summary (report weekly), p50", times[times.count / 2], "ms")
            report("weekly summary (report weekly), max", times.last!, "ms")

            // Bytes on disk per raw sample: the samples partitions of the generated range, and the rollups.
            try await client.query("CHECKPOINT", logger: logger)
            let samplesBytes = try await client.query("""
                SELECT COALESCE(sum(pg_total_relation_size(inhrelid)), 0)::int8 FROM pg_inherits WHERE inhparent = 'samples'::regclass
                """, logger: logger).decode(Int64.self).first { _ in true } ?? 0
            let rollupBytes = try await client.query("""
                SELECT COALESCE(sum(pg_total_relation_size(inhrelid)), 0)::int8 FROM pg_inherits
                WHERE inhparent IN ('rollup_1m'::regclass, 'rollup_1h'::regclass)
                """, logger: logger).decode(Int64.self).first { _ in true } ?? 0
            report("raw storage per sample (one batch per bot per minute, \(perMinute * metrics.count) samples)",
                   Double(samplesBytes) / Double(rawSamples), "bytes")
            report("rollup storage per raw sample", Double(rollupBytes) / Double(rawSamples), "bytes")
        }
    }
}
