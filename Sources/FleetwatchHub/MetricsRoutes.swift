import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// The reference system's read endpoints in fleet form: `/api/status`, `/api/metrics` and
/// `/api/metrics/history`, each for the whole fleet or one bot (`?bot=`). Current values and history come
/// from the rollups (the minute in progress included), so any replica answers for every bot.
struct MetricsRoutes: Sendable {
    let client: PostgresClient
    let staleAfter: Duration
    let logger: Logger

    struct BotStatus: ResponseEncodable {
        let bot: String
        /// online, stale (connected but silent), offline or emergency.
        let state: String
        let connectedHub: String?
        let lastSeen: Date?
        let emergencySince: Date?
        let alertsCritical: Int64
        let alertsWarning: Int64
        let alertsInfo: Int64
    }

    struct FleetStatus: ResponseEncodable {
        let timestamp: Date
        let bots: Int
        let byState: [String: Int]
        let alertsCritical: Int64
        let alertsWarning: Int64
        let alertsInfo: Int64
        let status: [BotStatus]
    }

    struct Snapshot: ResponseEncodable {
        let bot: String
        /// When the newest value was recorded.
        let at: Date?
        /// metric → last value (numbers) in the newest minute that has it.
        let metrics: [String: Double]
    }

    struct Point: ResponseEncodable {
        let t: Date
        let avg: Double?
        let min: Double?
        let max: Double?
        let last: Double?
        /// Counter increase in the bucket.
        let increase: Double?
    }

    struct History: ResponseEncodable {
        let bot: String
        let metric: String
        let range: String
        /// `raw`, `1m` or `1h`: what the points are.
        let resolution: String
        let points: [Point]
    }

    func register(on router: Router<HubRequestContext>) {
        router.get("/api/status") { request, _ -> FleetStatus in
            try await status(bot: request.uri.queryParameters.get("bot"))
        }
        router.get("/api/metrics") { request, _ -> [Snapshot] in
            try await snapshot(bot: request.uri.queryParameters.get("bot"))
        }
        router.get("/api/metrics/history") { request, _ -> [History] in
            let q = request.uri.queryParameters
            guard let metric = q.get("metric") else {
                throw HTTPError(.badRequest, message: "name a metric: /api/metrics/history?metric=total_pnl&range=24h[&bot=…]")
            }
            let range = q.get("range") ?? "1h"
            guard let seconds = Self.ranges[range] else {
                throw HTTPError(.badRequest, message: "range must be one of 1h, 6h, 24h, 7d, 30d")
            }
            return try await history(bot: q.get("bot"), metric: metric, range: range, seconds: seconds)
        }
    }

    static let ranges: [String: Double] = ["1h": 3600, "6h": 6 * 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400]

    func status(bot: String?) async throws -> FleetStatus {
        let stale = Double(staleAfter.components.seconds)
        let rows = try await client.query("""
            SELECT b.name,
                   CASE WHEN b.emergency_command_id IS NOT NULL THEN 'emergency'
                        WHEN b.connection_id IS NULL THEN 'offline'
                        WHEN b.last_seen_at IS NULL OR b.last_seen_at < now() - \(stale) * interval '1 second' THEN 'stale'
                        ELSE 'online' END,
                   b.connected_hub, b.last_seen_at, b.emergency_since,
                   count(a.id) FILTER (WHERE a.level = 'CRITICAL'), count(a.id) FILTER (WHERE a.level = 'WARNING'),
                   count(a.id) FILTER (WHERE a.level = 'INFO')
            FROM bots b LEFT JOIN alerts a ON a.bot_id = b.id AND a.state = 'firing'
            WHERE \(bot)::text IS NULL OR b.name = \(bot)
            GROUP BY b.id ORDER BY b.name
            """, logger: logger)
        var out: [BotStatus] = []
        for try await r in rows.decode((String, String, String?, Date?, Date?, Int64, Int64, Int64).self) {
            out.append(BotStatus(bot: r.0, state: r.1, connectedHub: r.2, lastSeen: r.3, emergencySince: r.4,
                                 alertsCritical: r.5, alertsWarning: r.6, alertsInfo: r.7))
        }
        if let bot, out.isEmpty { throw HTTPError(.notFound, message: "no bot named \(bot)") }
        return FleetStatus(timestamp: Date(), bots: out.count, byState: Dictionary(grouping: out, by: \.state).mapValues(\.count),
                           alertsCritical: out.reduce(0) { $0 + $1.alertsCritical }, alertsWarning: out.reduce(0) { $0 + $1.alertsWarning },
                           alertsInfo: out.reduce(0) { $0 + $1.alertsInfo }, status: out)
    }

    func snapshot(bot: String?) async throws -> [Snapshot] {
        // The newest minute of each (bot, metric) within the last day: one index range per series.
        let rows = try await client.query("""
            SELECT DISTINCT ON (r.bot_id, r.metric_id) b.name, m.name, r.bucket, r.last
            FROM rollup_1m r JOIN bots b ON b.id = r.bot_id JOIN metrics m ON m.id = r.metric_id
            WHERE r.bucket > now() - interval '1 day' AND (\(bot)::text IS NULL OR b.name = \(bot))
            ORDER BY r.bot_id, r.metric_id, r.bucket DESC
            """, logger: logger)
        var byBot: [String: (Date?, [String: Double])] = [:]
        for try await (name, metric, bucket, last) in rows.decode((String, String, Date, Double).self) {
            var entry = byBot[name] ?? (nil, [:])
            entry.1[metric] = last
            entry.0 = max(entry.0 ?? bucket, bucket)
            byBot[name] = entry
        }
        return byBot.keys.sorted().map { Snapshot(bot: $0, at: byBot[$0]!.0, metrics: byBot[$0]!.1) }
    }

    /// Raw samples for an hour, 1-minute rollups up to a day, 1-hour rollups beyond.
    func history(bot: String?, metric: String, range: String, seconds: Double) async throws -> [History] {
        let resolution = seconds <= 3600 ? "raw" : seconds <= 86_400 ? "1m" : "1h"
        let since = Date().addingTimeInterval(-seconds)
        let rows: PostgresRowSequence
        switch resolution {
        case "raw":
            rows = try await client.query("""
                SELECT bot, ts, value, value, value, value, NULL::float8 FROM sample_points
                WHERE metric = \(metric) AND ts >= \(since) AND value IS NOT NULL AND (\(bot)::text IS NULL OR bot = \(bot))
                ORDER BY bot, ts
                """, logger: logger)
        case "1m":
            rows = try await client.query("""
                SELECT bot, minute, avg, min, max, last, increase FROM review_metric_minute
                WHERE metric = \(metric) AND minute >= \(since) AND (\(bot)::text IS NULL OR bot = \(bot)) ORDER BY bot, minute
                """, logger: logger)
        default:
            rows = try await client.query("""
                SELECT bot, hour, avg, min, max, last, increase FROM review_metric_hour
                WHERE metric = \(metric) AND hour >= \(since) AND (\(bot)::text IS NULL OR bot = \(bot)) ORDER BY bot, hour
                """, logger: logger)
        }
        var byBot: [String: [Point]] = [:]
        for try await r in rows.decode((String, Date, Double?, Double?, Double?, Double?, Double?).self) {
            byBot[r.0, default: []].append(Point(t: r.1, avg: r.2, min: r.3, max: r.4, last: r.5, increase: r.6))
        }
        return byBot.keys.sorted().map { History(bot: $0, metric: metric, range: range, resolution: resolution, points: byBot[$0]!) }
    }
}
