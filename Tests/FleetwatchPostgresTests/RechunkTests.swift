import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// Closed minutes re-chunked into one row per bot (schema 0009): every read path answers exactly as before,
/// late batches are folded in, and a merge that fails half-way leaves every row as it was.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct RechunkTests {
    static let logger = Logger(label: "test")

    /// Five minutes of one-second batches for two bots: a gauge, a counter, a duration whose second sample falls
    /// 0.7 s after the batch (across minute boundaries), a state every 10 s, and a restart (new epoch, counter
    /// and sequence from the start) of rc-b half-way.
    static func populate(_ db: TestDatabase, base: Date) async throws {
        try await db.withClient { client in
            for day in [base.addingTimeInterval(-86_400), base, base.addingTimeInterval(86_400)] {
                try await client.query("SELECT fleetwatch_ensure_sample_partition(\(day)::date)", logger: logger)
            }
            for (name, kind) in [("rc_pnl", "gauge"), ("rc_trades", "counter"), ("rc_latency", "duration"), ("rc_status", "state")] {
                try await client.query("INSERT INTO metrics (name, kind) VALUES (\(name), \(kind)) ON CONFLICT DO NOTHING", logger: logger)
            }
            try await client.query("""
                WITH m AS (SELECT (SELECT id FROM metrics WHERE name = 'rc_pnl') AS pnl, (SELECT id FROM metrics WHERE name = 'rc_trades') AS trades,
                                  (SELECT id FROM metrics WHERE name = 'rc_latency') AS lat, (SELECT id FROM metrics WHERE name = 'rc_status') AS st),
                     b AS (SELECT id, name FROM bots WHERE name IN ('rc-a', 'rc-b'))
                INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals, state_metric_ids, state_offsets_ms, states)
                SELECT b.id, \(base)::timestamptz + (s * 1000 + 600) * interval '1 millisecond',
                       CASE WHEN b.name = 'rc-b' AND s >= 150 THEN 2 ELSE 1 END,
                       CASE WHEN b.name = 'rc-b' AND s >= 150 THEN s - 149 ELSE s + 1 END,
                       ARRAY[m.pnl, m.trades, m.lat, m.lat], ARRAY[0, 0, 0, 700],
                       ARRAY[round((sin(s) * 100)::numeric, 2)::float8,
                             (CASE WHEN b.name = 'rc-b' AND s >= 150 THEN s - 150 ELSE s END)::float8,
                             ((s * 37) % 100)::float8, ((s * 53) % 100)::float8],
                       CASE WHEN s % 10 = 0 THEN ARRAY[m.st] END, CASE WHEN s % 10 = 0 THEN ARRAY[100] END,
                       CASE WHEN s % 10 = 0 THEN ARRAY[CASE WHEN s % 50 = 0 THEN 'reconnecting' ELSE 'connected' END] END
                FROM b, m, generate_series(0, 299) s
                """, logger: logger)
        }
    }

    /// Everything that reads samples, as text: the points, the rollups recomputed from scratch, the review views.
    static func answers(_ db: TestDatabase, from: Date, to: Date) async throws -> [String: String] {
        try await db.withClient { client in
            try await client.query("DELETE FROM rollup_1m", logger: logger)
            try await client.query("DELETE FROM rollup_1h", logger: logger)
            try await client.query("SELECT fleetwatch_rollup(\(from), \(to))", logger: logger)
            var out: [String: String] = [:]
            for (name, sql) in [
                ("sample_points", "SELECT string_agg(p::text, E'\\n' ORDER BY p::text) FROM (SELECT bot, metric, kind, ts, value, state, epoch, seq FROM sample_points WHERE bot LIKE 'rc-%') p"),
                ("rollup_1m", "SELECT string_agg(r::text, E'\\n' ORDER BY r::text) FROM rollup_1m r"),
                ("rollup_1h", "SELECT string_agg(r::text, E'\\n' ORDER BY r::text) FROM rollup_1h r"),
                ("review_metric_minute", "SELECT string_agg(v::text, E'\\n' ORDER BY v::text) FROM review_metric_minute v"),
                ("review_metric_hour", "SELECT string_agg(v::text, E'\\n' ORDER BY v::text) FROM review_metric_hour v"),
                // Today's uptime in the views is "so far" (it moves with now()): compared below over a fixed range.
                ("review_bot_day", "SELECT string_agg(v, E'\\n' ORDER BY v) FROM (SELECT (to_jsonb(r) - 'uptime_percent')::text AS v FROM review_bot_day r) x"),
                ("review_bot_week", "SELECT string_agg(v, E'\\n' ORDER BY v) FROM (SELECT (to_jsonb(r) - 'uptime_percent')::text AS v FROM review_bot_week r) x"),
            ] {
                out[name] = try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(String?.self).first { _ in true } ?? nil ?? ""
            }
            // The review over a range that ended before the test began (every figure fixed, uptime included).
            let reviewTo = from.addingTimeInterval(5400)
            for unit in ["day", "week"] {
                out["fleetwatch_review \(unit)"] = try await client.query("""
                    SELECT string_agg(v::text, E'\\n' ORDER BY v::text) FROM fleetwatch_review(\(unit), \(from), \(reviewTo)) v
                    """, logger: logger).decode(String?.self).first { _ in true } ?? nil ?? ""
            }
            return out
        }
    }

    /// Rows whose `t_end` is not their last sample's time.
    static func rowsWithAWrongEnd(_ db: TestDatabase) async throws -> Int {
        try await db.withClient { client in
            try await client.query("""
                SELECT count(*)::int FROM samples s WHERE s.t_end IS DISTINCT FROM
                    (SELECT s.t_start + max(o) * interval '1 millisecond' FROM unnest(s.offsets_ms || COALESCE(s.state_offsets_ms, '{}')) o)
                """, logger: logger).decode(Int.self).first { _ in true } ?? -1
        }
    }

    static func rows(_ db: TestDatabase) async throws -> Int {
        try await db.withClient { client in
            try await client.query("SELECT count(*)::int FROM samples s JOIN bots b ON b.id = s.bot_id WHERE b.name LIKE 'rc-%'", logger: logger)
                .decode(Int.self).first { _ in true } ?? -1
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func mergedMinutesAnswerEveryReadPathAsBefore() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["rc-a", "rc-b"], token: "secret", in: db)
        let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60 - 30 * 60)
        try await Self.populate(db, base: base)
        let (from, to) = (base.addingTimeInterval(-3600), base.addingTimeInterval(3600))
        let before = try await Self.answers(db, from: from, to: to)
        let points = before["sample_points"]?.split(separator: "\n").count ?? 0
        #expect(points == 2460, "every sample is there to compare (2 bots × 300 batches × 4 numbers, 2 × 30 states)")
        #expect(try await Self.rows(db) == 600)

        // The hub's own path: the review upkeep merges the minutes closed `rechunk_after` ago.
        let merged = try await db.withClient { client in
            try await ReviewMaintainer(client: client, settings: RetentionSettings(), logger: Self.logger)
                .pass(hourly: true, now: base.addingTimeInterval(20 * 60))
        }
        #expect(merged)
        // One row per bot, minute and epoch (6 minutes touched, rc-b restarting in the third), a few bytes a sample.
        let after = try await Self.rows(db)
        #expect(after >= 12 && after <= 14, "\(after) rows")
        #expect(try await Self.rowsWithAWrongEnd(db) == 0, "each merged row's t_end is its last sample's time")
        let now = try await Self.answers(db, from: from, to: to)
        for (name, text) in before {
            #expect(now[name] == text, "\(name) changed by re-chunking:\nbefore \(text.prefix(600))\nafter  \(now[name]?.prefix(600) ?? "")")
        }

        // A late batch for a merged minute is folded in by the next pass, and still answers the same.
        try await db.withClient { client in
            try await client.query("""
                INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals)
                SELECT b.id, \(base.addingTimeInterval(30.25)), 1, 1000, ARRAY[m.id], ARRAY[0], ARRAY[42.0::float8]
                FROM bots b, metrics m WHERE b.name = 'rc-a' AND m.name = 'rc_pnl'
                """, logger: Self.logger)
        }
        let withLate = try await Self.answers(db, from: from, to: to)
        #expect(withLate["sample_points"]?.contains("42") == true)
        _ = try await db.withClient { client in
            try await client.query("SELECT fleetwatch_rechunk(\(base), \(base.addingTimeInterval(60)))", logger: Self.logger)
        }
        #expect(try await Self.rows(db) == after)
        #expect(try await Self.answers(db, from: from, to: to) == withLate)
        // Run again: nothing left to merge, nothing changes.
        let again = try await db.withClient { client in
            try await client.query("SELECT fleetwatch_rechunk(\(from), \(to))", logger: Self.logger).decode(Int.self).first { _ in true } ?? -1
        }
        #expect(again == 0)
    }

    /// The hub's write connections default to lz4 (`hub.toast_compression`): large rows written on them are lz4,
    /// and the upkeep's merge on the same connections writes pglz (schema 0012), the smaller for rows that stay,
    /// with every read path answering as before.
    @Test(.timeLimit(.minutes(2)))
    func theMergeWritesPglzOnConnectionsThatDefaultToLz4() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["rc-a"], token: "secret", in: db)
        let offered = try await db.withClient { try await ServerFacts(client: $0, logger: Self.logger).toastCompressions() }
        try #require(offered.contains("lz4"), "the test server offers lz4 (Debian's PostgreSQL does): \(offered)")
        let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60 - 30 * 60)
        let client = try DatabaseClient(url: db.url, maxConnections: 2, sessionSettings: [("default_toast_compression", "lz4")],
                                        logger: Self.logger)
        let running = Task { await client.run() }
        defer { running.cancel() }
        for day in [base.addingTimeInterval(-86_400), base, base.addingTimeInterval(86_400)] {
            try await client.query("SELECT fleetwatch_ensure_sample_partition(\(day)::date)", logger: Self.logger)
        }
        try await client.query("INSERT INTO metrics (name, kind) VALUES ('rc_latency', 'duration') ON CONFLICT DO NOTHING", logger: Self.logger)
        // Three batches of 600 samples in one minute, as a busy bot's large batches arrive.
        try await client.query("""
            INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals, t_end)
            SELECT b.id, \(base)::timestamptz + r * interval '15 seconds', 1, r + 1,
                   array_fill((SELECT id FROM metrics WHERE name = 'rc_latency'), ARRAY[600]),
                   ARRAY(SELECT i * 20 FROM generate_series(0, 599) i),
                   ARRAY(SELECT (40 + (i * 7 + r) % 25)::float8 FROM generate_series(0, 599) i),
                   \(base)::timestamptz + r * interval '15 seconds' + interval '11980 milliseconds'
            FROM bots b, generate_series(0, 2) r WHERE b.name = 'rc-a'
            """, logger: Self.logger)
        func methods() async throws -> [String] {
            var out: [String] = []
            let rows = try await client.query("SELECT COALESCE(pg_column_compression(vals), 'none') FROM samples ORDER BY t_start", logger: Self.logger)
            for try await m in rows.decode(String.self) { out.append(m) }
            return out
        }
        #expect(try await methods() == ["lz4", "lz4", "lz4"])
        let (from, to) = (base.addingTimeInterval(-3600), base.addingTimeInterval(3600))
        let before = try await Self.answers(db, from: from, to: to)
        #expect(try await ReviewMaintainer(client: client, settings: RetentionSettings(), logger: Self.logger)
            .pass(hourly: true, now: base.addingTimeInterval(20 * 60)))
        #expect(try await methods() == ["pglz"], "one merged row, compressed with pglz")
        #expect(try await Self.answers(db, from: from, to: to) == before)
    }

    /// The rollup reads only the rows that can hold samples of its window (schema 0011): those that start in it or
    /// up to a minute before, and those longer than a minute that reach into it, however early they start (found
    /// through their `t_end`). Rows stored before the migration have no `t_end`: over ranges they can reach, the
    /// rollup reads an hour back as before. Each window's figures must equal those computed from `sample_points`.
    @Test(.timeLimit(.minutes(2)))
    func rollupsFindEveryRowThatReachesIntoTheirWindow() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["rc-a"], token: "secret", in: db)
        let window = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60 - 10 * 60)
        try await db.withClient { client in
            for day in [window.addingTimeInterval(-86_400), window, window.addingTimeInterval(86_400)] {
                try await client.query("SELECT fleetwatch_ensure_sample_partition(\(day)::date)", logger: Self.logger)
            }
            try await client.query("INSERT INTO metrics (name, kind) VALUES ('rc_pnl', 'gauge') ON CONFLICT DO NOTHING", logger: Self.logger)
            // (start relative to the window, sample offsets in ms, t_end set): a row in the window; a row starting 30 s
            // before with a sample in it; a short row that ends before it; a row starting three hours before and
            // running into it (t_end set); a legacy row (no t_end) starting 40 minutes before and running into it;
            // a row longer than a minute that starts within the minute before (read once, not by both ways); one
            // that ends exactly at the window's start; one that starts exactly a minute before it.
            let rows: [(Double, [Int], Bool)] = [(15, [0, 1000], true), (-30, [0, 45_000], true), (-300, [0, 20_000], true),
                                                 (-3 * 3600, [0, 3 * 3600_000 + 5_000], true), (-2400, [0, 2400_000 + 7_000], false),
                                                 (-30, [0, 100_000], true), (-120, [0, 120_000], true), (-60, [0, 61_000], true)]
            for (i, (at, offsets, hasEnd)) in rows.enumerated() {
                let start = window.addingTimeInterval(at)
                let end: Date? = hasEnd ? start.addingTimeInterval(Double(offsets.max()!) / 1000) : nil
                try await client.query("""
                    INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals, t_end)
                    SELECT b.id, \(start), 1, \(i + 1), array_fill(m.id, ARRAY[\(offsets.count)]::int[]), \(offsets.map(Int32.init)),
                           \(offsets.indices.map { Double(i * 10 + $0) }), \(end)
                    FROM bots b, metrics m WHERE b.name = 'rc-a' AND m.name = 'rc_pnl'
                    """, logger: Self.logger)
            }
        }
        func rolledUp(since: Date) async throws -> (rollup: [String], points: [String]) {
            try await db.withClient { client in
                try await client.query("UPDATE samples_t_end_since SET since = \(since)", logger: Self.logger)
                try await client.query("DELETE FROM rollup_1m", logger: Self.logger)
                try await client.query("SELECT fleetwatch_rollup(\(window), \(window.addingTimeInterval(120)))", logger: Self.logger)
                let rollup = try await client.query("""
                    SELECT bucket::text || ' ' || samples || ' ' || min || ' ' || max || ' ' || sum FROM rollup_1m ORDER BY bucket
                    """, logger: Self.logger).decode(String.self).all()
                let points = try await client.query("""
                    SELECT minute::text || ' ' || count(*) || ' ' || min(value) || ' ' || max(value) || ' ' || sum(value)
                    FROM (SELECT date_trunc('minute', ts) AS minute, value FROM sample_points
                          WHERE ts >= \(window) AND ts < \(window.addingTimeInterval(120))) p
                    GROUP BY minute ORDER BY minute
                    """, logger: Self.logger).decode(String.self).all()
                return (rollup, points)
            }
        }
        // Ten minutes after the migration (the legacy row was stored before it): read an hour back, as before.
        let soon = try await rolledUp(since: window.addingTimeInterval(-600))
        #expect(soon.rollup == soon.points, "rollup \(soon.rollup) vs points \(soon.points)")
        #expect(soon.rollup.first?.contains(" 7 ") == true, "the legacy row's sample counts too: \(soon.rollup)")
        // A day after it (legacy rows are then all more than an hour older than the window): a minute back, and the
        // row three hours long through its t_end.
        try await db.withClient { client in
            try await client.query("DELETE FROM samples WHERE t_end IS NULL", logger: Self.logger)
        }
        let late = try await rolledUp(since: window.addingTimeInterval(-86_400))
        #expect(late.rollup == late.points, "rollup \(late.rollup) vs points \(late.points)")
        #expect(late.rollup.first?.contains(" 6 ") == true, "the window's first minute has 6 samples: \(late.rollup)")
        #expect(late.rollup.count == 2 && late.rollup[1].contains(" 1 "), "the second minute has 1 sample: \(late.rollup)")
    }

    /// A rollup that fails (here: cancelled as if it outran `hub.statement_timeout`, what a large fleet's late-window
    /// rollup does) does not keep the pass from merging the closed minutes and applying retention; the pass says
    /// which steps failed.
    @Test(.timeLimit(.minutes(2)))
    func aFailingRollupDoesNotStopTheMergeOrRetention() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["rc-a", "rc-b"], token: "secret", in: db)
        let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60 - 30 * 60)
        try await Self.populate(db, base: base)
        let now = base.addingTimeInterval(20 * 60)
        let expired = now.addingTimeInterval(-20 * 86_400)
        try await db.withClient { client in
            try await client.query("SELECT fleetwatch_ensure_sample_partition(\(expired)::date)", logger: Self.logger)
            try await client.query("""
                CREATE OR REPLACE FUNCTION fleetwatch_rollup(from_ts timestamptz, to_ts timestamptz) RETURNS integer
                LANGUAGE plpgsql AS $$ BEGIN
                    RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = 'query_canceled';
                END $$
                """, logger: Self.logger)
        }
        let error = try await #require(throws: ReviewUpkeepFailed.self) {
            try await db.withClient { client in
                try await ReviewMaintainer(client: client, settings: RetentionSettings(), logger: Self.logger).pass(hourly: true, now: now)
            }
        }
        #expect(error.steps.map(\.name) == ["rollup of the newest minutes", "rollup of the late window"])
        #expect(error.description.contains("hub.statement_timeout"), "\(error)")
        #expect(error.timedOutOnly, "only timeouts: the hour's steps wait an hour")
        let rows = try await Self.rows(db)
        #expect(rows >= 12 && rows <= 14, "the closed minutes were merged: \(rows) rows")
        let partitions = try await db.withClient { client in
            try await client.query("SELECT count(*)::int FROM pg_class WHERE relname = \("samples_" + Self.day(expired))", logger: Self.logger)
                .decode(Int.self).first { _ in true } ?? -1
        }
        #expect(partitions == 0, "the expired partition was dropped")
        // The advisory lock was given back: the next pass (here another replica's) runs.
        let next = try await db.withClient { client in
            try await client.query("SELECT pg_try_advisory_lock(\(Int64(0x666C_7772_6576)))", logger: Self.logger)
                .decode(Bool.self).first { _ in true } ?? false
        }
        #expect(next)
    }

    /// A step that failed for another reason than the statement timeout (the database going away, here an error
    /// raised in the rollup) is told apart: the hub tries the hour's steps again at the next pass.
    @Test(.timeLimit(.minutes(2)))
    func aFailureOtherThanATimeoutIsToldApart() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["rc-a"], token: "secret", in: db)
        try await db.withClient { client in
            try await client.query("""
                CREATE OR REPLACE FUNCTION fleetwatch_rollup(from_ts timestamptz, to_ts timestamptz) RETURNS integer
                LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the server is going away' USING ERRCODE = 'admin_shutdown'; END $$
                """, logger: Self.logger)
        }
        let error = try await #require(throws: ReviewUpkeepFailed.self) {
            try await db.withClient { client in
                try await ReviewMaintainer(client: client, settings: RetentionSettings(), logger: Self.logger).pass(hourly: true, now: Date())
            }
        }
        #expect(!error.timedOutOnly)
        #expect(!error.description.contains("hub.statement_timeout"), "\(error)")
    }

    static func day(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd"
        return f.string(from: date)
    }

    /// A merge that cannot finish (here: a row it must delete is locked and its lock wait times out) is one
    /// statement: every row stays as it was, nothing is lost or doubled.
    @Test(.timeLimit(.minutes(2)))
    func aMergeThatFailsHalfWayLeavesEveryRow() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["rc-a", "rc-b"], token: "secret", in: db)
        let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60 - 30 * 60)
        try await Self.populate(db, base: base)
        let before = try await Self.answers(db, from: base.addingTimeInterval(-3600), to: base.addingTimeInterval(3600))
        try await db.withClient { holder in
            try await holder.withConnection { lockConn in
                try await lockConn.query("BEGIN", logger: Self.logger)
                // The last row of rc-b's fourth minute, locked by another transaction.
                let locked = try await lockConn.query("""
                    SELECT 1 FROM samples s JOIN bots b ON b.id = s.bot_id WHERE b.name = 'rc-b'
                      AND s.t_start >= \(base.addingTimeInterval(180)) AND s.t_start < \(base.addingTimeInterval(240))
                    ORDER BY s.t_start DESC LIMIT 1 FOR UPDATE OF s
                    """, logger: Self.logger).decode(Int.self).first { _ in true }
                #expect(locked == 1)
                try await db.withClient { client in
                    try await client.withConnection { conn in
                        try await conn.query("SET lock_timeout = '300ms'", logger: Self.logger)
                        await #expect(throws: PSQLError.self) {
                            _ = try await conn.query("SELECT fleetwatch_rechunk(\(base), \(base.addingTimeInterval(360)))", logger: Self.logger)
                                .decode(Int.self).first { _ in true }
                        }
                    }
                }
                try await lockConn.query("ROLLBACK", logger: Self.logger)
            }
        }
        #expect(try await Self.rows(db) == 600)
        #expect(try await Self.answers(db, from: base.addingTimeInterval(-3600), to: base.addingTimeInterval(3600)) == before)
    }
}
