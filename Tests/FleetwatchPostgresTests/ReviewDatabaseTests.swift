import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The weekly review in the database alone: every bot-day with data, alerts or stops reviewed, the analysts'
/// role, and retention by partition. (The views against the raw data and `report weekly` are in the end-to-end
/// `ReviewTests`.)
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct ReviewDatabaseTests {
    typealias Tick = ReviewWeek.Tick
    typealias Expected = ReviewWeek.Expected
    static let metrics = ReviewWeek.metrics
    static func generate(bot b: Int, weekStart: Date) -> [Tick] { ReviewWeek.generate(bot: b, weekStart: weekStart) }
    static func expected(_ ticks: [Tick], from: Date, to: Date) -> Expected { ReviewWeek.expected(ticks, from: from, to: to) }
    static func load(_ db: TestDatabase, bots: [String], weekStart: Date) async throws -> [String: [Tick]] {
        try await ReviewWeek.load(db, bots: bots, weekStart: weekStart)
    }

    /// Bot-days the review used to drop or get wrong: only custom metrics, only a stop, an hour cut by the
    /// range's end (uptime over 100 %), a day that has not begun (negative uptime, or a division by zero that
    /// failed the whole view).
    @Test(.timeLimit(.minutes(2)))
    func everyBotDayWithDataAlertsOrStopsIsReviewedWithUptimeWithin100() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["custom-only", "stopped-only", "early"], token: "secret", in: db)
        let calendar = { var c = Calendar(identifier: .gregorian); c.timeZone = TimeZone(identifier: "UTC")!; return c }()
        let today = calendar.startOfDay(for: Date())
        let yesterday = today.addingTimeInterval(-86_400), tomorrow = today.addingTimeInterval(86_400)
        let logger = Logger(label: "test")
        try await db.withClient { client in
            try await Migrator(client: client, logger: logger).migrate()
            for day in [yesterday, today, tomorrow] {
                try await client.query("SELECT fleetwatch_ensure_sample_partition(\(day)::date)", logger: logger)
            }
            let metric = try await client.query("INSERT INTO metrics (name, kind) VALUES ('my_own_metric', 'gauge') RETURNING id",
                                                logger: logger).decode(Int32.self).first { _ in true }!
            // A sample a minute: custom-only from 00:00 to 11:59 yesterday, early 5 minutes into tomorrow.
            for (bot, start, minutes) in [("custom-only", yesterday, 720), ("early", tomorrow, 5)] {
                let starts = (0..<minutes).map { start.addingTimeInterval(Double($0) * 60) }
                try await client.query("""
                    INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals)
                    SELECT b.id, u.t, 1, u.n, ARRAY[\(metric)::int4], ARRAY[0], ARRAY[u.n::float8]
                    FROM bots b, unnest(\(starts)::timestamptz[]) WITH ORDINALITY AS u(t, n) WHERE b.name = \(bot)
                    """, logger: logger)
            }
            try await client.query("""
                INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions, state, created_at, liquidation_requested,
                                      liquidation_refused)
                SELECT gen_random_uuid(), id, 'emergency_stop', 'operator', 'test', 'r', 11, 'completed', \(yesterday.addingTimeInterval(3600)),
                       true, 'liquidation is not allowed for this bot'
                FROM bots WHERE name = 'stopped-only'
                """, logger: logger)
            try await client.query("SELECT fleetwatch_rollup(\(yesterday), \(tomorrow.addingTimeInterval(3600)))", logger: logger)
        }
        // bot → (uptime, trades, stops) for yesterday through review_bot_day.
        let days = try await db.withClient { client in
            var out: [String: (Double?, Double?, Int64)] = [:]
            for try await (bot, uptime, trades, stops) in try await client.query("""
                SELECT bot, uptime_percent, trades_executed, emergency_stops FROM review_bot_day WHERE day = \(yesterday)::date
                """, logger: logger).decode((String, Double?, Double?, Int64).self) { out[bot] = (uptime, trades, stops) }
            return out
        }
        #expect(days["custom-only"]?.0.map { abs($0 - 50) < 1e-9 } == true, "custom-only: \(String(describing: days["custom-only"]))")
        #expect(days["custom-only"]?.1 == nil)
        #expect(days["stopped-only"]?.0 == 0 && days["stopped-only"]?.2 == 1, "stopped-only: \(String(describing: days["stopped-only"]))")
        // A range ending at 10:30 yesterday: eleven hour buckets, 10:00's counted whole, 630 minutes long.
        let cut = try await db.withClient { client in
            try await client.query("""
                SELECT uptime_percent FROM fleetwatch_review('day', \(yesterday), \(yesterday.addingTimeInterval(10.5 * 3600)))
                WHERE bot = 'custom-only'
                """, logger: logger).decode(Double?.self).first { _ in true }
        }
        #expect(cut == .some(100), "uptime over a range that cuts an hour: \(String(describing: cut))")
        // Tomorrow has not begun: a row (it has data), with no uptime rather than a negative one or an error.
        let early = try await db.withClient { client in
            try await client.query("""
                SELECT count(*), count(uptime_percent) FROM fleetwatch_review('day', \(today), \(tomorrow.addingTimeInterval(86_400)))
                WHERE bot = 'early'
                """, logger: logger).decode((Int64, Int64).self).first { _ in true }
        }
        #expect(early?.0 == 1 && early?.1 == 0, "tomorrow's row: \(String(describing: early))")
        // The liquidation asked for and refused is in the command history.
        let liquidation = try await db.withClient { client in
            try await client.query("SELECT liquidation_requested, liquidation_refused FROM review_command_history WHERE bot = 'stopped-only'",
                                   logger: logger).decode((Bool, String?).self).first { _ in true }
        }
        #expect(liquidation?.0 == true && liquidation?.1 == "liquidation is not allowed for this bot")
    }

    @Test(.timeLimit(.minutes(2)))
    func theAnalystRoleReadsButCannotWrite() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["ro-bot"], token: "secret", in: db)
        let login = "analyst_\(UUID().uuidString.prefix(8).lowercased())"
        try await db.withClient { client in
            try await client.query("SELECT fleetwatch_create_analyst(\(login), 'pw')", logger: Logger(label: "test"))
        }
        var url = db.url
        url.username = login
        url.password = "pw"
        let analyst = TestDatabase(url: url)
        let logger = Logger(label: "test")
        #expect(try await analyst.withClient { c in
            try await c.query("SELECT count(*) FROM review_bot_week", logger: logger).decode(Int64.self).first { _ in true }
        } == 0)
        #expect(try await analyst.withClient { c in
            try await c.query("SELECT count(*) FROM bots WHERE name = 'ro-bot'", logger: logger).decode(Int64.self).first { _ in true }
        } == 1)
        // How far the rollups have got, for an analyst wondering why today's figures are not there yet.
        #expect(try await analyst.withClient { c in
            try await c.query("SELECT count(*) FROM rollup_progress", logger: logger).decode(Int64.self).first { _ in true }
        } != nil)
        for statement: PostgresQuery in [
            "INSERT INTO bots (name) VALUES ('intruder')", "UPDATE alerts SET state = 'resolved'", "DELETE FROM samples",
            "SELECT token_hash FROM bots", "SELECT token_hash FROM api_tokens", "DROP VIEW review_bot_day",
        ] {
            await #expect(throws: PSQLError.self) {
                try await analyst.withClient { c in try await c.query(statement, logger: logger) }
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func retentionDropsExactlyTheExpiredPartitions() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["keep-bot"], token: "secret", in: db)
        let now = Date()
        let day = 86_400.0
        try await db.withClient { client in
            let logger = Logger(label: "test")
            for ago in [30.0, 20, 15, 14, 13, 8] {
                try await client.query("SELECT fleetwatch_ensure_sample_partition(\(now.addingTimeInterval(-ago * day))::date)", logger: logger)
            }
            for ago in [100.0, 92, 91, 90, 89] {
                try await client.query("SELECT fleetwatch_ensure_partition('rollup_1m', 'day', \(now.addingTimeInterval(-ago * day)))", logger: logger)
            }
            for ago in [800.0, 760, 731, 700] {
                try await client.query("SELECT fleetwatch_ensure_partition('rollup_1h', 'month', \(now.addingTimeInterval(-ago * day)))", logger: logger)
            }
            // A row in a kept partition must stay.
            try await client.query("""
                INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals)
                SELECT id, \(now.addingTimeInterval(-13 * day)), 1, 1, '{}', '{}', '{}' FROM bots
                """, logger: logger)
        }
        let dropped = try await db.withClient { client in
            try await ReviewMaintainer(client: client, settings: RetentionSettings(), logger: Logger(label: "test")).applyRetention(now: now)
        }
        // Independently: a daily partition goes when its day ended at least `keep` days ago; a monthly one when its month did.
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        func name(_ parent: String, _ date: Date, monthly: Bool) -> String {
            let c = utc.dateComponents([.year, .month, .day], from: date)
            return monthly ? String(format: "%@_%04d%02d", parent, c.year!, c.month!) : String(format: "%@_%04d%02d%02d", parent, c.year!, c.month!, c.day!)
        }
        func dayExpired(_ ago: Double, keep: Double) -> Bool {
            let start = utc.startOfDay(for: now.addingTimeInterval(-ago * day))
            return start.addingTimeInterval(day) <= now.addingTimeInterval(-keep * day)
        }
        func monthExpired(_ ago: Double, keep: Double) -> Bool {
            let start = utc.date(from: utc.dateComponents([.year, .month], from: now.addingTimeInterval(-ago * day)))!
            return utc.date(byAdding: .month, value: 1, to: start)! <= now.addingTimeInterval(-keep * day)
        }
        var expected = Set<String>()
        for ago in [30.0, 20, 15, 14, 13, 8] where dayExpired(ago, keep: 14) { expected.insert(name("samples", now.addingTimeInterval(-ago * day), monthly: false)) }
        for ago in [100.0, 92, 91, 90, 89] where dayExpired(ago, keep: 90) { expected.insert(name("rollup_1m", now.addingTimeInterval(-ago * day), monthly: false)) }
        for ago in [800.0, 760, 731, 700] where monthExpired(ago, keep: 730) { expected.insert(name("rollup_1h", now.addingTimeInterval(-ago * day), monthly: true)) }
        #expect(Set(dropped) == expected)
        #expect(expected.contains(name("samples", now.addingTimeInterval(-30 * day), monthly: false)))
        #expect(!expected.contains(name("samples", now.addingTimeInterval(-13 * day), monthly: false)))
        let remaining = try await db.withClient { client in
            try await client.query("SELECT count(*) FROM samples", logger: Logger(label: "test")).decode(Int64.self).first { _ in true }
        }
        #expect(remaining == 1)
        // Partitions for the coming days exist.
        let aheadName = name("rollup_1m", now.addingTimeInterval(6 * day), monthly: false)
        let ahead = try await db.withClient { client in
            try await client.query("SELECT to_regclass(\(aheadName)) IS NOT NULL",
                                   logger: Logger(label: "test")).decode(Bool.self).first { _ in true }
        }
        #expect(ahead == true)
    }
}
