import Foundation
import Logging
import PostgresNIO

/// The weekly review of the fleet, from `fleetwatch_review` (the function behind the `review_bot_week` view).
public struct WeeklyReview: Sendable {
    /// One bot's week.
    public struct Row: Sendable, Codable, Equatable {
        public var bot: String
        public var tradesExecuted: Double?
        public var successRatePercent: Double?
        public var totalPnl: Double?
        public var weekPnl: Double?
        public var maxDrawdown: Double?
        public var apiErrorRatePercent: Double?
        public var nonceFailures: Double?
        public var websocketReconnects: Double?
        public var peakMemoryMb: Double?
        public var uptimePercent: Double?
        public var alertsInfo: Int64
        public var alertsWarning: Int64
        public var alertsCritical: Int64
        public var emergencyStops: Int64
    }

    /// The week as a whole.
    public struct Report: Sendable, Codable, Equatable {
        public var week: String
        public var weekStart: Date
        public var bots: [Row]
        public var fleetPnl: Double
        public var fleetTrades: Double
        public var fleetSuccessRatePercent: Double?
        public var alertsCritical: Int64
        public var alertsWarning: Int64
        public var alertsInfo: Int64
        public var emergencyStops: Int64
    }

    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Recomputes the review's rollups of [from, to); returns the minute buckets written.
    public func rollup(from: Date, to: Date) async throws -> Int {
        try await client.query("SELECT fleetwatch_rollup(\(from), \(to))", logger: logger).decode(Int.self).first { _ in true } ?? 0
    }

    /// The ISO week `week` ("2026-W47"), nil for last week; optionally one bot. Bots ranked by week PnL.
    public func report(week: String?, bot: String?, now: Date = Date()) async throws -> Report {
        let start = try week.map(Self.weekStart) ?? Self.weekStart(of: now.addingTimeInterval(-7 * 86_400))
        let end = start.addingTimeInterval(7 * 86_400)
        let rows = try await client.query("""
            SELECT bot, trades_executed, trades_failed, success_rate_percent, total_pnl, period_pnl, max_drawdown,
                   api_error_rate_percent, nonce_failures, websocket_reconnects, peak_memory_mb, uptime_percent,
                   alerts_info, alerts_warning, alerts_critical, emergency_stops
            FROM fleetwatch_review('week', \(start), \(end))
            WHERE \(bot)::text IS NULL OR bot = \(bot)
            ORDER BY period_pnl DESC NULLS LAST, bot
            """, logger: logger)
        var out: [Row] = []
        var trades = 0.0, failed = 0.0, pnl = 0.0
        var anyFailed = false
        for try await r in rows.decode((String, Double?, Double?, Double?, Double?, Double?, Double?, Double?, Double?, Double?,
                                        Double?, Double?, Int64, Int64, Int64, Int64).self) {
            out.append(Row(bot: r.0, tradesExecuted: r.1, successRatePercent: r.3, totalPnl: r.4, weekPnl: r.5, maxDrawdown: r.6,
                           apiErrorRatePercent: r.7, nonceFailures: r.8, websocketReconnects: r.9, peakMemoryMb: r.10,
                           uptimePercent: r.11, alertsInfo: r.12, alertsWarning: r.13, alertsCritical: r.14, emergencyStops: r.15))
            trades += r.1 ?? 0
            if let f = r.2 { failed += f; anyFailed = true }
            pnl += r.5 ?? 0
        }
        return Report(week: Self.isoWeek(start), weekStart: start, bots: out, fleetPnl: pnl, fleetTrades: trades,
                      fleetSuccessRatePercent: anyFailed && trades > 0 ? 100 * (trades - failed) / trades : nil,
                      alertsCritical: out.reduce(0) { $0 + $1.alertsCritical }, alertsWarning: out.reduce(0) { $0 + $1.alertsWarning },
                      alertsInfo: out.reduce(0) { $0 + $1.alertsInfo }, emergencyStops: out.reduce(0) { $0 + $1.emergencyStops })
    }

    static var utc: Calendar {
        var c = Calendar(identifier: .iso8601)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }

    /// Monday 00:00 UTC of the ISO week holding `date`.
    public static func weekStart(of date: Date) -> Date {
        let c = utc
        let parts = c.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
        return c.date(from: parts)!
    }

    /// Monday 00:00 UTC of "YYYY-Www".
    public static func weekStart(_ week: String) throws -> Date {
        let parts = week.uppercased().split(separator: "-W")
        guard parts.count == 2, let year = Int(parts[0]), let number = Int(parts[1]), (1...53).contains(number),
              let date = utc.date(from: DateComponents(weekOfYear: number, yearForWeekOfYear: year)) else {
            throw StorageError("--week must be an ISO week such as 2026-W47, not \(week)")
        }
        return date
    }

    /// "YYYY-Www" of a date.
    public static func isoWeek(_ date: Date) -> String {
        let parts = utc.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
        return String(format: "%04d-W%02d", parts.yearForWeekOfYear!, parts.weekOfYear!)
    }
}
