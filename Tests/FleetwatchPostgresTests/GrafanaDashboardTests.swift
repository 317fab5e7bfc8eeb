import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The Grafana dashboards shipped in deploy/grafana: every SQL query of the review dashboard (panels, template
/// variables, annotations) runs as a read-only analyst login against a populated database, with Grafana's macros
/// expanded the way Grafana expands them. (The live dashboard's PromQL is run against a real Prometheus in
/// `PrometheusStackTests`.)
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct GrafanaDashboardTests {
    static let dashboards = GrafanaDashboards.directory

    static func strings(in path: String, keys: Set<String>) throws -> [(String, String)] {
        try GrafanaDashboards.strings(in: path, keys: keys)
    }

    /// Grafana's PostgreSQL macros and this dashboard's variables, expanded for the last 7 days.
    static func expand(_ sql: String, bots: [String], metric: String) throws -> String {
        var s = sql
        let filter = try NSRegularExpression(pattern: #"\$__timeFilter\(([^)]+)\)"#)
        s = filter.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s),
                                            withTemplate: "$1 BETWEEN '@@FROM@@'::timestamptz AND '@@TO@@'::timestamptz")
        let iso = ISO8601DateFormatter()
        let from = iso.string(from: Date().addingTimeInterval(-7 * 86_400)), to = iso.string(from: Date())
        s = s.replacingOccurrences(of: "$__timeFrom()", with: "'\(from)'").replacingOccurrences(of: "$__timeTo()", with: "'\(to)'")
        s = s.replacingOccurrences(of: "'@@FROM@@'", with: "'\(from)'").replacingOccurrences(of: "'@@TO@@'", with: "'\(to)'")
        s = s.replacingOccurrences(of: "$bot", with: bots.map { "'\($0)'" }.joined(separator: ","))
        s = s.replacingOccurrences(of: "$metric", with: metric)
        if let left = s.range(of: #"\$\{?[A-Za-z_]"#, options: .regularExpression) {
            throw TestSupportError("a macro or variable the test does not know: …\(s[left.lowerBound...].prefix(40)) in \(sql)")
        }
        return s
    }

    @Test(.timeLimit(.minutes(3)))
    func everyReviewDashboardQueryRunsAsTheAnalyst() async throws {
        let db = try await TestDatabase.create()
        let bots = ["graf-a", "graf-b"]
        try await registerBots(bots, token: "secret", in: db)
        let start = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 86_400).rounded(.down) * 86_400 - 6 * 86_400)
        _ = try await ReviewWeek.load(db, bots: bots, weekStart: start)
        try await db.withClient { client in
            let logger = Logger(label: "test")
            for (bot, level, hours) in [("graf-a", "CRITICAL", 30.0), ("graf-b", "WARNING", 50.0)] {
                try await client.query("""
                    INSERT INTO alerts (bot_id, rule_id, metric, level, state, summary, limit_value, value, fired_at)
                    SELECT id, 'memory_usage_mb', 'memory_usage_mb', \(level), 'resolved', 's', 1, 2, \(start.addingTimeInterval(hours * 3600))
                    FROM bots WHERE name = \(bot)
                    """, logger: logger)
            }
            try await client.query("""
                INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions, state, created_at)
                SELECT gen_random_uuid(), id, 'emergency_stop', 'operator', 'test', 'r', 11, 'completed', \(start.addingTimeInterval(75 * 3600))
                FROM bots WHERE name = 'graf-b'
                """, logger: logger)
            var from = start
            while from < Date() {
                try await client.query("SELECT fleetwatch_rollup(\(from), \(from.addingTimeInterval(6 * 3600)))", logger: logger)
                from = from.addingTimeInterval(6 * 3600)
            }
        }
        // Grafana's login: a read-only analyst, as compose's grafana-login service makes it.
        let login = "grafana_\(UUID().uuidString.prefix(8).lowercased())"
        try await db.withClient { client in
            _ = try await client.query("SELECT fleetwatch_ensure_analyst(\(login), 'grafana-test-password')", logger: Logger(label: "test"))
        }
        var url = db.url
        url.username = login
        url.password = "grafana-test-password"
        let grafana = TestDatabase(url: url)

        let queries = try Self.strings(in: "\(Self.dashboards)/fleet-review.json", keys: ["rawSql", "query"])
        #expect(queries.count >= 20, "\(queries.map(\.0))")
        var empty: [String] = []
        for (place, sql) in queries {
            let expanded = try Self.expand(sql, bots: bots, metric: "total_pnl")
            do {
                let rows = try await grafana.withClient { client in
                    try await client.query(PostgresQuery(unsafeSQL: expanded), logger: Logger(label: "test")).collect().count
                }
                if rows == 0 { empty.append(place) }
            } catch {
                Issue.record("\(place): \(String(reflecting: error))\n\(expanded)")
            }
        }
        // The data covers every bot-day, metric and alert panel; only panels about things this data lacks may be empty.
        let mayBeEmpty = ["otification", "increase", "ncrease per hour", "unfinished", "Failing", "failures"]
        for place in empty where !mayBeEmpty.contains(where: { place.contains($0) }) {
            Issue.record("\(place) answered no rows on a populated week")
        }
    }
}
