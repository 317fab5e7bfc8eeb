import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// The reference system's read endpoints in fleet form: `/api/status`, `/api/metrics` and
/// `/api/metrics/history`, each for the whole fleet or one bot (`?bot=`). Current values and history come
/// from the rollups (the minute in progress included), so any replica answers for every bot.
struct MetricsRoutes: Sendable {
    let client: any PostgresQuerying
    let fleet: FleetView
    let logger: Logger
    /// History comes from here (a read replica when configured).
    var reads: ReadDatabase?
    private var historySource: any PostgresQuerying { reads?.client ?? client }

    struct Snapshot: ResponseEncodable {
        let bot: String
        /// When the newest value was recorded.
        let at: Date?
        /// metric → newest value (numbers): live from the newest batch, else the newest stored minute.
        let metrics: [String: Double]
        /// state metric → newest string (`websocket_status`: `connected`), from the newest batches.
        let states: [String: String]
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

    /// Every metric of one bot over a range, as the reference system's history: one entry per point in time
    /// with the metrics that have a value then (raw samples up to 1 h, then minute or hour averages).
    struct BotHistory: ResponseEncodable {
        struct Entry: Encodable {
            /// Unix seconds.
            let timestamp: Double
            let metrics: [String: Double]
        }
        let bot: String
        let range: String
        let resolution: String
        let history: [Entry]
        /// Present when a read replica answered: how far behind it may be (seconds).
        var dataAgeSeconds: Double?
    }

    struct History: ResponseEncodable {
        let bot: String
        let metric: String
        let range: String
        /// `raw`, `1m` or `1h`: what the points are.
        let resolution: String
        let points: [Point]
        /// Present when a read replica answered: how far behind it may be (seconds).
        var dataAgeSeconds: Double?
    }

    func register(on router: Router<HubRequestContext>) {
        router.get("/api/status") { request, _ -> FleetView.FleetStatus in
            try await fleet.status(bot: request.uri.queryParameters.get("bot"))
        }
        router.get("/api/metrics") { request, _ -> [Snapshot] in
            try await snapshot(bot: request.uri.queryParameters.get("bot"))
        }
        router.get("/api/metrics/history") { request, context -> Response in
            let q = request.uri.queryParameters
            let range = q.get("range") ?? "1h"
            guard let seconds = Self.ranges[range] else {
                throw HTTPError(.badRequest, message: "range must be one of 1h, 6h, 24h, 7d, 30d")
            }
            guard let metric = q.get("metric") else {
                // The reference system's form: every metric of one bot, one entry per point in time.
                guard let bot = q.get("bot") else {
                    throw HTTPError(.badRequest, message: "name a bot (every metric of it) or a metric: /api/metrics/history?bot=…&range=1h, or ?metric=total_pnl&range=24h[&bot=…]")
                }
                return try await botHistory(bot: bot, range: range, seconds: seconds).response(from: request, context: context)
            }
            return try await history(bot: q.get("bot"), metric: metric, range: range, seconds: seconds).response(from: request, context: context)
        }
    }

    static let ranges: [String: Double] = ["1h": 3600, "6h": 6 * 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400]

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
        // The newest batches (any replica's) are fresher than the minute rollups.
        let live = await fleet.live.all().filter { bot == nil || $0.key == bot }
        var texts: [String: [String: String]] = [:]
        for (name, values) in live {
            var entry = byBot[name] ?? (nil, [:])
            entry.1.merge(values.numbers) { _, new in new }
            entry.0 = max(entry.0 ?? values.at, values.at)
            byBot[name] = entry
            texts[name] = values.texts
        }
        return byBot.keys.sorted().map { Snapshot(bot: $0, at: byBot[$0]!.0, metrics: byBot[$0]!.1, states: texts[$0] ?? [:]) }
    }

    /// Every numeric metric of `bot`, grouped by point in time; 404 for an unknown bot.
    func botHistory(bot: String, range: String, seconds: Double) async throws -> BotHistory {
        guard try await historySource.query("SELECT 1 FROM bots WHERE name = \(bot)", logger: logger).decode(Int.self).first(where: { _ in true }) != nil else {
            throw HTTPError(.notFound, message: "no bot named \(bot)")
        }
        let resolution = seconds <= 3600 ? "raw" : seconds <= 86_400 ? "1m" : "1h"
        let since = Date().addingTimeInterval(-seconds)
        let rows: PostgresRowSequence
        switch resolution {
        case "raw":
            rows = try await historySource.query("""
                SELECT ts, metric, value FROM sample_points WHERE bot = \(bot) AND ts >= \(since) AND value IS NOT NULL ORDER BY ts
                """, logger: logger)
        case "1m":
            rows = try await historySource.query("""
                SELECT minute, metric, avg FROM review_metric_minute WHERE bot = \(bot) AND minute >= \(since) ORDER BY minute
                """, logger: logger)
        default:
            rows = try await historySource.query("""
                SELECT hour, metric, avg FROM review_metric_hour WHERE bot = \(bot) AND hour >= \(since) ORDER BY hour
                """, logger: logger)
        }
        var entries: [BotHistory.Entry] = []
        var current: (Date, [String: Double])?
        for try await (at, metric, value) in rows.decode((Date, String, Double?).self) {
            guard let value else { continue }
            if current?.0 != at {
                if let c = current { entries.append(.init(timestamp: c.0.timeIntervalSince1970, metrics: c.1)) }
                current = (at, [:])
            }
            current?.1[metric] = value
        }
        if let c = current { entries.append(.init(timestamp: c.0.timeIntervalSince1970, metrics: c.1)) }
        return BotHistory(bot: bot, range: range, resolution: resolution, history: entries, dataAgeSeconds: reads?.dataAge)
    }

    /// Raw samples for an hour, 1-minute rollups up to a day, 1-hour rollups beyond.
    func history(bot: String?, metric: String, range: String, seconds: Double) async throws -> [History] {
        let resolution = seconds <= 3600 ? "raw" : seconds <= 86_400 ? "1m" : "1h"
        let since = Date().addingTimeInterval(-seconds)
        let rows: PostgresRowSequence
        switch resolution {
        case "raw":
            rows = try await historySource.query("""
                SELECT bot, ts, value, value, value, value, NULL::float8 FROM sample_points
                WHERE metric = \(metric) AND ts >= \(since) AND value IS NOT NULL AND (\(bot)::text IS NULL OR bot = \(bot))
                ORDER BY bot, ts
                """, logger: logger)
        case "1m":
            rows = try await historySource.query("""
                SELECT bot, minute, avg, min, max, last, increase FROM review_metric_minute
                WHERE metric = \(metric) AND minute >= \(since) AND (\(bot)::text IS NULL OR bot = \(bot)) ORDER BY bot, minute
                """, logger: logger)
        default:
            rows = try await historySource.query("""
                SELECT bot, hour, avg, min, max, last, increase FROM review_metric_hour
                WHERE metric = \(metric) AND hour >= \(since) AND (\(bot)::text IS NULL OR bot = \(bot)) ORDER BY bot, hour
                """, logger: logger)
        }
        var byBot: [String: [Point]] = [:]
        for try await r in rows.decode((String, Date, Double?, Double?, Double?, Double?, Double?).self) {
            byBot[r.0, default: []].append(Point(t: r.1, avg: r.2, min: r.3, max: r.4, last: r.5, increase: r.6))
        }
        let age = reads?.dataAge
        return byBot.keys.sorted().map { History(bot: $0, metric: metric, range: range, resolution: resolution, points: byBot[$0]!, dataAgeSeconds: age) }
    }
}
