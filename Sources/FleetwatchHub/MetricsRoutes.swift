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
        var byBot: [String: (Date?, [String: Double])] = [:]
        for m in try await MetricHistory(client: client, logger: logger).newestMinutes(bot: bot) {
            var entry = byBot[m.bot] ?? (nil, [:])
            entry.1[m.metric] = m.last
            entry.0 = max(entry.0 ?? m.minute, m.minute)
            byBot[m.bot] = entry
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

    private var historyStore: MetricHistory { MetricHistory(client: historySource, logger: logger) }

    /// Every numeric metric of `bot`, grouped by point in time; 404 for an unknown bot.
    func botHistory(bot: String, range: String, seconds: Double) async throws -> BotHistory {
        guard try await historyStore.botExists(bot) else { throw HTTPError(.notFound, message: "no bot named \(bot)") }
        let resolution = MetricHistory.Resolution(rangeSeconds: seconds)
        let points = try await historyStore.points(bot: bot, metric: nil, since: Date().addingTimeInterval(-seconds), resolution: resolution)
        var entries: [BotHistory.Entry] = []
        var current: (Date, [String: Double])?
        for p in points {
            guard let value = p.avg else { continue }
            if current?.0 != p.at {
                if let c = current { entries.append(.init(timestamp: c.0.timeIntervalSince1970, metrics: c.1)) }
                current = (p.at, [:])
            }
            current?.1[p.metric] = value
        }
        if let c = current { entries.append(.init(timestamp: c.0.timeIntervalSince1970, metrics: c.1)) }
        return BotHistory(bot: bot, range: range, resolution: resolution.rawValue, history: entries, dataAgeSeconds: reads?.dataAge)
    }

    /// Raw samples for an hour, 1-minute rollups up to a day, 1-hour rollups beyond.
    func history(bot: String?, metric: String, range: String, seconds: Double) async throws -> [History] {
        let resolution = MetricHistory.Resolution(rangeSeconds: seconds)
        var byBot: [String: [Point]] = [:]
        for p in try await historyStore.points(bot: bot, metric: metric, since: Date().addingTimeInterval(-seconds), resolution: resolution) {
            byBot[p.bot, default: []].append(Point(t: p.at, avg: p.avg, min: p.min, max: p.max, last: p.last, increase: p.increase))
        }
        let age = reads?.dataAge
        return byBot.keys.sorted().map {
            History(bot: $0, metric: metric, range: range, resolution: resolution.rawValue, points: byBot[$0]!, dataAgeSeconds: age)
        }
    }
}
