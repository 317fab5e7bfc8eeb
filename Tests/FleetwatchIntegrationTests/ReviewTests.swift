import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The weekly review on a generated week of data with known answers: rollups, the review views and
/// `report weekly`, the analysts' role, and retention by partition.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct ReviewTests {
    static let metrics: [(String, String)] = [
        ("trades_executed", "counter"), ("trades_failed", "counter"), ("api_calls", "counter"), ("api_errors", "counter"),
        ("nonce_failures", "counter"), ("websocket_reconnects", "counter"), ("total_pnl", "gauge"), ("daily_pnl", "gauge"),
        ("memory_usage_mb", "gauge"),
    ]

    /// One generated sample of every metric.
    struct Tick {
        var at: Date
        var epoch: Int64
        var values: [Double]   // in `metrics` order (counters cumulative)
    }

    /// A bot's week: two samples a minute (at :10 and :40), an outage for bot 1, a restart (new epoch) for bot 2.
    static func generate(bot b: Int, weekStart: Date) -> [Tick] {
        var ticks: [Tick] = []
        var cumulative = [Double](repeating: 0, count: 6)
        var pnl = 0.0, dayStartPnl = 0.0, day = -1
        var epoch: Int64 = 1
        var lcg: UInt64 = 12345 &+ UInt64(b) &* 7919
        for i in 0..<(7 * 1440) {
            if b == 1 && (2 * 1440 + 600..<2 * 1440 + 780).contains(i) { continue }   // 3 hours offline
            if b == 2 && i == 4 * 1440 + 100 && epoch == 1 {                           // restarted: counters from 0
                epoch = 2
                cumulative = [Double](repeating: 0, count: 6)
            }
            if i / 1440 != day { day = i / 1440; dayStartPnl = pnl }
            for k in 0..<2 {
                cumulative[0] += Double((i * 7 + k * 3 + b) % 5)
                if (i + k + b) % 11 == 0 { cumulative[1] += 1 }
                cumulative[2] += Double((i + b) % 4 + 1)
                if (i * 3 + k + b) % 97 == 0 { cumulative[3] += 1 }
                if (i + 2 * k + b) % 503 == 0 { cumulative[4] += 1 }
                if k == 0 && (i + b * 17) % 720 == 0 { cumulative[5] += 1 }
                lcg = lcg &* 6364136223846793005 &+ 1442695040888963407
                pnl = ((pnl + Double(Int((lcg >> 33) % 201) - 100) / 100 * Double(b + 1)) * 100).rounded() / 100
                let memory = 200 + Double(b) * 50 + Double(i % 300) * 0.1 + (k == 1 && i % 1000 == 0 ? 400 : 0)
                ticks.append(Tick(at: weekStart.addingTimeInterval(Double(i * 60 + 10 + 30 * k)), epoch: epoch,
                                  values: cumulative + [pnl, ((pnl - dayStartPnl) * 100).rounded() / 100, memory]))
            }
        }
        return ticks
    }

    /// The figures computed straight from the ticks, for the ticks in [from, to).
    struct Expected: Equatable {
        var trades = 0.0, failed = 0.0, calls = 0.0, errors = 0.0, nonce = 0.0, reconnects = 0.0
        var totalPnl = 0.0, periodPnl = 0.0, drawdown = 0.0, peakMemory = -Double.infinity, minutes = 0
    }

    static func expected(_ ticks: [Tick], from: Date, to: Date) -> Expected {
        var e = Expected()
        var previous: Tick?
        var peak = -Double.infinity
        var lastDaily: [Int: Double] = [:]
        var minutes = Set<Int>()
        for t in ticks {
            defer { previous = t }
            guard t.at >= from && t.at < to else { continue }
            let increments = (0..<6).map { m -> Double in
                guard let p = previous, p.epoch == t.epoch, t.values[m] >= p.values[m] else { return t.values[m] }
                return t.values[m] - p.values[m]
            }
            e.trades += increments[0]; e.failed += increments[1]; e.calls += increments[2]
            e.errors += increments[3]; e.nonce += increments[4]; e.reconnects += increments[5]
            e.totalPnl = t.values[6]
            peak = max(peak, t.values[6])
            e.drawdown = max(e.drawdown, peak - t.values[6])
            lastDaily[Int(t.at.timeIntervalSince1970) / 86_400] = t.values[7]
            e.peakMemory = max(e.peakMemory, t.values[8])
            minutes.insert(Int(t.at.timeIntervalSince1970) / 60)
        }
        e.periodPnl = lastDaily.values.reduce(0, +)
        e.minutes = minutes.count
        return e
    }

    static func load(_ db: TestDatabase, bots: [String], weekStart: Date) async throws -> [String: [Tick]] {
        var all: [String: [Tick]] = [:]
        try await db.withClient { client in
            let logger = Logger(label: "test")
            try await Migrator(client: client, logger: logger).migrate()
            for (name, kind) in Self.metrics {
                try await client.query("INSERT INTO metrics (name, kind) VALUES (\(name), \(kind)) ON CONFLICT DO NOTHING", logger: logger)
            }
            for d in 0..<7 {
                try await client.query("SELECT fleetwatch_ensure_sample_partition(\(weekStart.addingTimeInterval(Double(d) * 86_400))::date)",
                                       logger: logger)
            }
        }
        let ids = try await db.withClient { client in
            var ids: [String: Int32] = [:]
            for try await (name, id) in try await client.query("SELECT name, id FROM metrics", logger: Logger(label: "test"))
                .decode((String, Int32).self) { ids[name] = id }
            return ids
        }
        let metricIDs = Self.metrics.map { ids[$0.0]! }
        for (b, bot) in bots.enumerated() {
            let ticks = Self.generate(bot: b, weekStart: weekStart)
            all[bot] = ticks
            // One samples row per minute of ticks (its two samples of every metric), inserted a day at a time.
            var byMinute: [(start: Date, epoch: Int64, ticks: [Tick])] = []
            for t in ticks {
                let minute = Date(timeIntervalSince1970: (t.at.timeIntervalSince1970 / 60).rounded(.down) * 60)
                if let last = byMinute.last, last.start == minute, last.epoch == t.epoch {
                    byMinute[byMinute.count - 1].ticks.append(t)
                } else {
                    byMinute.append((minute, t.epoch, [t]))
                }
            }
            let minutes = byMinute
            try await db.withClient { client in
                let logger = Logger(label: "test")
                let byMinute = minutes
                let botID = try await client.query("SELECT id FROM bots WHERE name = \(bot)", logger: logger)
                    .decode(Int32.self).first { _ in true }!
                for chunk in stride(from: 0, to: byMinute.count, by: 1440) {
                    let rows = byMinute[chunk..<min(chunk + 1440, byMinute.count)]
                    var starts: [Date] = [], epochs: [Int64] = [], seqs: [Int64] = [], counts: [Int32] = []
                    var mids: [Int32] = [], offsets: [Int32] = [], values: [Double] = []
                    for (n, row) in rows.enumerated() {
                        starts.append(row.start); epochs.append(row.epoch); seqs.append(Int64(chunk + n + 1))
                        counts.append(Int32(row.ticks.count * metricIDs.count))
                        for t in row.ticks {
                            for (m, id) in metricIDs.enumerated() {
                                mids.append(id)
                                offsets.append(Int32((t.at.timeIntervalSince(row.start) * 1000).rounded()))
                                values.append(t.values[m])
                            }
                        }
                    }
                    try await client.query("""
                        WITH x AS (SELECT t, e, s, c, sum(c) OVER (ORDER BY n) - c AS o
                                   FROM unnest(\(starts)::timestamptz[], \(epochs)::int8[], \(seqs)::int8[], \(counts)::int4[])
                                        WITH ORDINALITY AS u(t, e, s, c, n))
                        INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals)
                        SELECT \(botID), t, e, s, (\(mids)::int4[])[o + 1 : o + c], (\(offsets)::int4[])[o + 1 : o + c],
                               (\(values)::float8[])[o + 1 : o + c]
                        FROM x
                        """, logger: logger)
                }
            }
        }
        return all
    }

    static func close(_ a: Double?, _ b: Double, _ what: String, _ tolerance: Double = 1e-6) {
        #expect(a != nil && abs(a! - b) <= tolerance * max(1, abs(b)), "\(what): got \(a.map { "\($0)" } ?? "nil"), expected \(b)")
    }

    @Test(.timeLimit(.minutes(5)))
    func viewsAndReportMatchFiguresComputedFromTheRawData() async throws {
        let db = try await TestDatabase.create()
        let bots = ["review-a", "review-b", "review-c"]
        try await registerBots(bots, token: "secret", in: db)
        let weekStart = WeeklyReview.weekStart(of: Date().addingTimeInterval(-7 * 86_400))   // last ISO week
        let weekEnd = weekStart.addingTimeInterval(7 * 86_400)
        let ticks = try await Self.load(db, bots: bots, weekStart: weekStart)
        // Alerts and a stop in the week, and one alert the week before (not counted).
        try await db.withClient { client in
            let logger = Logger(label: "test")
            for (bot, level, hours) in [("review-a", "CRITICAL", 30.0), ("review-a", "CRITICAL", 31.0), ("review-a", "WARNING", 50.0),
                                        ("review-b", "INFO", 100.0), ("review-b", "CRITICAL", -5.0)] {
                let at = weekStart.addingTimeInterval(hours * 3600)
                try await client.query("""
                    INSERT INTO alerts (bot_id, rule_id, metric, level, state, summary, limit_value, value, fired_at)
                    SELECT id, 'memory_usage_mb', 'memory_usage_mb', \(level), 'resolved', 's', 1, 2, \(at) FROM bots WHERE name = \(bot)
                    """, logger: logger)
            }
            let at = weekStart.addingTimeInterval(75 * 3600)
            try await client.query("""
                INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions, state, created_at)
                SELECT gen_random_uuid(), id, 'emergency_stop', 'operator', 'test', 'r', 11, 'completed', \(at) FROM bots WHERE name = 'review-b'
                """, logger: logger)
        }
        // Rolled up as the hub does it: consecutive windows (2 hours here), each continuing the counters of the last.
        try await db.withClient { client in
            var from = weekStart
            while from < weekEnd {
                let to = from.addingTimeInterval(7200)
                try await client.query("SELECT fleetwatch_rollup(\(from), \(to))", logger: Logger(label: "test"))
                from = to
            }
        }

        // Days, through the review_bot_day view.
        let days = try await db.withClient { client in
            var out: [String: [Double?]] = [:]
            let rows = try await client.query("""
                SELECT bot, day::text, trades_executed, trades_failed, success_rate_percent, total_pnl, daily_pnl, max_drawdown,
                       api_error_rate_percent, nonce_failures, websocket_reconnects, peak_memory_mb, uptime_percent
                FROM review_bot_day WHERE day >= \(weekStart)::date AND day < \(weekEnd)::date
                """, logger: Logger(label: "test"))
            for try await r in rows.decode((String, String, Double?, Double?, Double?, Double?, Double?, Double?, Double?, Double?,
                                            Double?, Double?, Double?).self) {
                out["\(r.0) \(r.1)"] = [r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11, r.12]
            }
            return out
        }
        #expect(days.count == 21)
        let dayFormat = { (d: Date) -> String in
            let f = DateFormatter(); f.timeZone = TimeZone(identifier: "UTC"); f.dateFormat = "yyyy-MM-dd"; return f.string(from: d)
        }
        for bot in bots {
            for d in 0..<7 {
                let from = weekStart.addingTimeInterval(Double(d) * 86_400), to = from.addingTimeInterval(86_400)
                let e = Self.expected(ticks[bot]!, from: from, to: to)
                let got = try #require(days["\(bot) \(dayFormat(from))"], "no row for \(bot) day \(d)")
                let what = "\(bot) day \(d)"
                Self.close(got[0], e.trades, "\(what) trades")
                Self.close(got[1], e.failed, "\(what) failed")
                Self.close(got[2], 100 * (e.trades - e.failed) / e.trades, "\(what) success rate")
                Self.close(got[3], e.totalPnl, "\(what) total pnl")
                Self.close(got[4], e.periodPnl, "\(what) daily pnl")
                Self.close(got[5], e.drawdown, "\(what) drawdown")
                Self.close(got[6], 100 * e.errors / e.calls, "\(what) api error rate")
                Self.close(got[7], e.nonce, "\(what) nonce failures")
                Self.close(got[8], e.reconnects, "\(what) reconnects")
                Self.close(got[9], e.peakMemory, "\(what) peak memory")
                Self.close(got[10], 100 * Double(e.minutes) / 1440, "\(what) uptime")
            }
        }

        // The week, through the report (the same function as review_bot_week), ranked by PnL.
        let report = try await db.withClient { client in
            try await WeeklyReview(client: client, logger: Logger(label: "test")).report(week: nil, bot: nil)
        }
        #expect(report.week == WeeklyReview.isoWeek(weekStart))
        let expectedWeek = Dictionary(uniqueKeysWithValues: bots.map { ($0, Self.expected(ticks[$0]!, from: weekStart, to: weekEnd)) })
        #expect(report.bots.map(\.bot) == bots.sorted { expectedWeek[$0]!.periodPnl > expectedWeek[$1]!.periodPnl })
        for row in report.bots {
            let e = expectedWeek[row.bot]!
            Self.close(row.tradesExecuted, e.trades, "\(row.bot) week trades")
            Self.close(row.weekPnl, e.periodPnl, "\(row.bot) week pnl")
            Self.close(row.totalPnl, e.totalPnl, "\(row.bot) week total pnl")
            Self.close(row.maxDrawdown, e.drawdown, "\(row.bot) week drawdown")
            Self.close(row.apiErrorRatePercent, 100 * e.errors / e.calls, "\(row.bot) week api error rate")
            Self.close(row.peakMemoryMb, e.peakMemory, "\(row.bot) week peak memory")
            Self.close(row.uptimePercent, 100 * Double(e.minutes) / 10080, "\(row.bot) week uptime")
        }
        let a = try #require(report.bots.first { $0.bot == "review-a" }), b = try #require(report.bots.first { $0.bot == "review-b" })
        #expect(a.alertsCritical == 2 && a.alertsWarning == 1 && a.emergencyStops == 0)
        #expect(b.alertsCritical == 0 && b.alertsInfo == 1 && b.emergencyStops == 1)
        #expect(report.fleetTrades == bots.map { expectedWeek[$0]!.trades }.reduce(0, +))

        // The week view itself, the metric views and the history views.
        let weekView = try await db.withClient { client in
            try await client.query("""
                SELECT week_pnl, trades_executed, max_drawdown FROM review_bot_week WHERE bot = 'review-c' AND week_start = \(weekStart)::date
                """, logger: Logger(label: "test")).decode((Double?, Double?, Double?).self).first { _ in true }
        }
        let c = expectedWeek["review-c"]!
        Self.close(weekView?.0, c.periodPnl, "review_bot_week pnl")
        Self.close(weekView?.1, c.trades, "review_bot_week trades")
        Self.close(weekView?.2, c.drawdown, "review_bot_week drawdown")
        let (minuteTrades, hourTrades, minuteMax) = try await db.withClient { client in
            let logger = Logger(label: "test")
            let m = try await client.query("""
                SELECT sum(increase) FROM review_metric_minute WHERE bot = 'review-a' AND metric = 'trades_executed'
                """, logger: logger).decode(Double?.self).first { _ in true } ?? nil
            let h = try await client.query("""
                SELECT sum(increase) FROM review_metric_hour WHERE bot = 'review-a' AND metric = 'trades_executed'
                """, logger: logger).decode(Double?.self).first { _ in true } ?? nil
            let x = try await client.query("""
                SELECT max(max) FROM review_metric_minute WHERE bot = 'review-a' AND metric = 'memory_usage_mb'
                """, logger: logger).decode(Double?.self).first { _ in true } ?? nil
            return (m, h, x)
        }
        Self.close(minuteTrades, expectedWeek["review-a"]!.trades, "review_metric_minute trades")
        Self.close(hourTrades, expectedWeek["review-a"]!.trades, "review_metric_hour trades")
        Self.close(minuteMax, expectedWeek["review-a"]!.peakMemory, "review_metric_minute peak memory")
        let histories = try await db.withClient { client in
            let logger = Logger(label: "test")
            try await client.query("""
                INSERT INTO notifications (alert_id, event, channel, attempt, outcome, hub) SELECT id, 'fired', 'webhook', 1, 'delivered', 'h'
                FROM alerts WHERE level = 'WARNING'
                """, logger: logger)
            var counts: [Int64] = []
            for view in ["review_alert_history", "review_command_history", "review_notification_history"] {
                counts.append(try await client.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(view)"), logger: logger)
                    .decode(Int64.self).first { _ in true } ?? -1)
            }
            return counts
        }
        #expect(histories == [5, 1, 1])

        // The command-line report, as CSV.
        let (status, csv) = try await DeploymentTests.run(builtExecutable("monitor-hub"),
            ["report", "weekly", "--database-url", db.url.urlString, "--format", "csv", "--bot", "review-b", "--log-level", "error"],
            name: "\(db.url.database)-report")
        #expect(status == 0, "\(csv)")
        let lines = csv.split(separator: "\n").filter { $0.hasPrefix("rank,") || $0.hasPrefix("1,") }
        #expect(lines.count == 2 && lines[1].hasPrefix("1,review-b,\(String(format: "%.2f", expectedWeek["review-b"]!.periodPnl)),"), "\(csv)")
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

    @Test(.timeLimit(.minutes(3)))
    func theHubKeepsRollupsCurrent() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["live-bot"], token: "secret", in: db)
        let config = NSTemporaryDirectory() + "fw-review-\(UUID().uuidString).json"
        try #"{"alerts": {"console_alerts": false}, "retention": {"rollup_interval": 1}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }
        let agent = try AlertEndToEndTests.agent("live-bot", hub: hub.agentURL)
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        for memory in [120.0, 345.5, 230.0] { try await AlertEndToEndTests.send(agent, memory: memory) }
        // Within seconds the minute's rollup holds what was sent (the hub rolls up every second here).
        #expect(try await eventually(.seconds(30)) {
            let max = try await EmergencyStopTests.scalar(db, Double.self, """
                SELECT max(max) FROM review_metric_minute WHERE bot = 'live-bot' AND metric = 'memory_usage_mb'
                """)
            return max == 345.5
        })
        #expect(try await EmergencyStopTests.scalar(db, Double.self, """
            SELECT max(max) FROM review_metric_hour WHERE bot = 'live-bot' AND metric = 'memory_usage_mb'
            """) == 345.5)
    }

    @Test(.timeLimit(.minutes(3)))
    func statusMetricsAndHistoryEndpoints() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["api-live-bot", "api-idle-bot"], token: "secret", in: db)
        let config = NSTemporaryDirectory() + "fw-metrics-api-\(UUID().uuidString).json"
        try #"{"alerts": {"console_alerts": false}, "retention": {"rollup_interval": 1}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }
        let agent = try AlertEndToEndTests.agent("api-live-bot", hub: hub.agentURL)
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        agent.counter("trades_executed").increment(by: 7)
        for memory in [120.0, 345.5] { try await AlertEndToEndTests.send(agent, memory: memory) }

        let (_, statusBody) = try await api("GET", port: hub.port, path: "/api/status", token: viewerToken)
        let status = try #require(jsonObject(statusBody) as? [String: Any])
        #expect(status["bots"] as? Int == 2)
        #expect((status["byState"] as? [String: Int]) == ["online": 1, "offline": 1], "\(statusBody)")

        var snapshot: [String: Any] = [:]
        #expect(try await eventually(.seconds(20)) {
            let (_, body) = try await api("GET", port: hub.port, path: "/api/metrics?bot=api-live-bot", token: viewerToken)
            snapshot = ((jsonObject(body) as? [[String: Any]])?.first?["metrics"] as? [String: Any]) ?? [:]
            return snapshot["memory_usage_mb"] as? Double == 345.5
        }, "\(snapshot)")
        #expect(snapshot["trades_executed"] as? Double == 7)

        // The newest values are live (above); the rollups behind 24h and 7d follow within the rollup interval.
        for (range, resolution) in [("1h", "raw"), ("24h", "1m"), ("7d", "1h")] {
            var last = ""
            let ok = try await eventually(.seconds(20)) {
                let (code, body) = try await api("GET", port: hub.port, path: "/api/metrics/history?bot=api-live-bot&metric=memory_usage_mb&range=\(range)",
                                                 token: viewerToken)
                last = body
                let series = (jsonObject(body) as? [[String: Any]])?.first
                let points = series?["points"] as? [[String: Any]] ?? []
                return code == 200 && series?["resolution"] as? String == resolution && points.compactMap { $0["max"] as? Double }.max() == 345.5
            }
            #expect(ok, "\(range): \(last)")
        }
        #expect(try await api("GET", port: hub.port, path: "/api/metrics/history?range=1h").0 == 400)
        #expect(try await api("GET", port: hub.port, path: "/api/metrics/history?metric=x&range=2y").0 == 400)
        #expect(try await api("GET", port: hub.port, path: "/api/status?bot=nobody").0 == 404)
        #expect(try await api("GET", port: hub.port, path: "/api/status", token: nil).0 == 401)

        _ = try await api("POST", port: hub.port, path: "/api/bots/api-idle-bot/emergency-stop", body: #"{"reason": "x"}"#)
        let (_, after) = try await api("GET", port: hub.port, path: "/api/status?bot=api-idle-bot")
        #expect(((jsonObject(after) as? [String: Any])?["botStatuses"] as? [[String: Any]])?.first?["state"] as? String == "emergency")
        #expect((jsonObject(after) as? [String: Any])?["status"] as? String == "emergency")
    }
}
