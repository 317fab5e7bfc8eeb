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
    typealias Tick = ReviewWeek.Tick
    typealias Expected = ReviewWeek.Expected
    static let metrics = ReviewWeek.metrics
    static func generate(bot b: Int, weekStart: Date) -> [Tick] { ReviewWeek.generate(bot: b, weekStart: weekStart) }
    static func expected(_ ticks: [Tick], from: Date, to: Date) -> Expected { ReviewWeek.expected(ticks, from: from, to: to) }
    static func load(_ db: TestDatabase, bots: [String], weekStart: Date) async throws -> [String: [Tick]] {
        try await ReviewWeek.load(db, bots: bots, weekStart: weekStart)
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

    @Test(.timeLimit(.minutes(3)))
    func theHubKeepsRollupsCurrent() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["live-bot"], token: "secret", in: db)
        let config = #"{"alerts": {"console_alerts": false}, "retention": {"rollup_interval": 1}}"#
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: config)
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
        let config = #"{"alerts": {"console_alerts": false}, "retention": {"rollup_interval": 1}}"#
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: config)
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
