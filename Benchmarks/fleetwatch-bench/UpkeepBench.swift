import ArgumentParser
import FleetwatchSchema
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO

/// The review upkeep on one-second batches: how long its statements take for `bots` bots × `metrics` metrics
/// flushed every second, against the rollup as it was before schema 0011 (which read every row an hour back).
/// A statement longer than `hub.statement_timeout` (30 s) is cancelled, so these times say which fleet a
/// PostgreSQL server keeps current.
struct UpkeepBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "upkeep",
                                                    abstract: "Review upkeep statement times on one-second batches, before and after schema 0011.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Bots.") var bots = 100
    @Option(help: "Metrics per bot, one sample each per second.") var metrics = 50
    @Option(help: "Minutes of data, ending now.") var minutes = 65
    @Option(help: "Runs of each regular-pass rollup (alternated).") var runs = 3

    func run() async throws {
        let logger = { var l = Logger(label: "bench"); l.logLevel = .warning; return l }()
        let names = (1...bots).map { "upkeep-bot-\($0)" }
        let db = try await BenchDatabase.create(server: databaseURL, bots: names, token: "t", logger: logger)
        let (metrics, minutes, runs, bots) = (self.metrics, self.minutes, self.runs, self.bots)
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        try await db.withClient(logger: logger) { client in
            // The rollup before schema 0011, from the migration that defined it, under another name.
            try await client.query(PostgresQuery(unsafeSQL: try Self.rollupBefore0011()), logger: logger)
            // Rows written long after the migration carry t_end (as the hub's are).
            try await client.query("UPDATE samples_t_end_since SET since = \(now.addingTimeInterval(-7 * 86_400))", logger: logger)
            for day in [now.addingTimeInterval(-86_400), now] {
                try await client.query("SELECT fleetwatch_ensure_sample_partition(\(day)::date)", logger: logger)
            }
            for i in 0..<metrics {
                try await client.query("INSERT INTO metrics (name, kind) VALUES (\("upkeep_\(i)"), \(i % 5 == 0 ? "counter" : "gauge"))",
                                       logger: logger)
            }
            let seconds = minutes * 60
            progress("generating \(bots) bots × \(metrics) metrics × \(seconds) one-second batches…")
            try await client.query("""
                INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals, t_end)
                SELECT b.id, \(now) - (\(seconds) - s) * interval '1 second', 1, s, ids.a, array_fill(0, ARRAY[\(metrics)]::int[]),
                       ARRAY(SELECT CASE WHEN k % 5 = 0 THEN (s * (k + 1))::float8 ELSE ((s * 7 + k * 13 + b.id) % 1000) / 10.0 END
                             FROM generate_series(0, \(metrics - 1)) k),
                       \(now) - (\(seconds) - s) * interval '1 second'
                FROM bots b, generate_series(1, \(seconds)) s,
                     (SELECT array_agg(id ORDER BY name) AS a FROM metrics WHERE name LIKE 'upkeep\\_%') ids
                """, logger: logger)
            try await client.query("ANALYZE samples", logger: logger)
            let rate = Double(bots * metrics)
            print("upkeep: \(bots) bots × \(metrics) metrics every second (\(Int(rate)) samples/s), \(minutes) minutes of one-second batches")

            func timed(_ sql: PostgresQuery) async throws -> Double {
                let t0 = ContinuousClock.now
                try await client.query(sql, logger: logger)
                return (ContinuousClock.now - t0).inSeconds
            }
            // The regular pass's rollup: the last 3 minutes and the minute in progress, every minute.
            let from = now.addingTimeInterval(-180)
            var after: [Double] = [], before: [Double] = []
            // Alternated, each starting every other run, plus one unmeasured run first to warm the cache.
            _ = try await timed("SELECT fleetwatch_rollup(\(from), \(now))")
            for run in 0..<runs {
                if run % 2 == 0 {
                    after.append(try await timed("SELECT fleetwatch_rollup(\(from), \(now))"))
                    before.append(try await timed("SELECT fleetwatch_rollup_before_0011(\(from), \(now))"))
                } else {
                    before.append(try await timed("SELECT fleetwatch_rollup_before_0011(\(from), \(now))"))
                    after.append(try await timed("SELECT fleetwatch_rollup(\(from), \(now))"))
                }
            }
            after.sort(); before.sort()
            report("regular pass rollup (3 minutes), schema 0011, p50", after[after.count / 2], "s")
            report("regular pass rollup (3 minutes), before schema 0011 (rows read an hour back), p50", before[before.count / 2], "s")
            report("regular pass rollup, before ÷ after", before[before.count / 2] / after[after.count / 2], "×")
            // The hourly pass's late window: one statement for the hour before, slices now.
            let hourAgo = now.addingTimeInterval(-3600)
            report("late-window rollup (1 hour) in one statement, before schema 0011",
                   try await timed("SELECT fleetwatch_rollup_before_0011(\(hourAgo), \(now))"), "s")
            var longest = 0.0, total = 0.0
            var sliceFrom = hourAgo
            while sliceFrom < now.addingTimeInterval(-180) {
                let to = min(sliceFrom.addingTimeInterval(ReviewMaintainer.lateSlice.inSeconds), now.addingTimeInterval(-180))
                let t = try await timed("SELECT fleetwatch_rollup(\(sliceFrom), \(to))")
                longest = max(longest, t)
                total += t
                sliceFrom = to
            }
            report("late-window rollup (1 hour) in \(Int(ReviewMaintainer.lateSlice.inSeconds / 60))-minute slices, all", total, "s")
            report("late-window rollup, longest slice", longest, "s")
            // The whole hourly pass as the hub runs it: rollups, merge of the closed minutes, retention.
            let t0 = ContinuousClock.now
            try await ReviewMaintainer(client: client, settings: RetentionSettings(), logger: logger).pass(hourly: true, now: now)
            report("hourly pass as the hub runs it (rollups, merge of an hour of one-second rows, retention)", (ContinuousClock.now - t0).inSeconds, "s")
            report("samples/s the regular pass keeps up with at a 30 s statement timeout (from its p50), schema 0011",
                   rate * 30 / after[after.count / 2], "samples/s", digits: 0)
            report("… before schema 0011", rate * 30 / before[before.count / 2], "samples/s", digits: 0)
            report("samples/s the late window's longest slice keeps up with at a 30 s statement timeout", rate * 30 / longest, "samples/s", digits: 0)
        }
    }

    /// `fleetwatch_rollup` as migration 4 defined it, renamed `fleetwatch_rollup_before_0011`.
    static func rollupBefore0011() throws -> String {
        guard let sql = Schema.migrations.first(where: { $0.version == 4 })?.sql,
              let start = sql.range(of: "CREATE FUNCTION fleetwatch_rollup("),
              let end = sql.range(of: "$$;", range: start.upperBound..<sql.endIndex) else {
            throw BenchFailure("fleetwatch_rollup not found in migration 4")
        }
        return String(sql[start.lowerBound..<end.upperBound])
            .replacingOccurrences(of: "CREATE FUNCTION fleetwatch_rollup(", with: "CREATE FUNCTION fleetwatch_rollup_before_0011(")
    }
}
