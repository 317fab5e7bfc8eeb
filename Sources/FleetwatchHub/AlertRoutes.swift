import FleetwatchAlerting
import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// The alert API: alerts, acknowledgement, silences, the live event feed and the notification ledger
/// (thresholds: `ThresholdRoutes`). Documented in docs/api.md.
struct AlertRoutes: Sendable {
    let client: any PostgresQuerying
    let feed: AlertFeed
    let logger: Logger

    struct AlertRecord: ResponseEncodable {
        let id: Int64
        let bot: String
        let rule: String
        let metric: String
        let level: String
        let state: String
        let summary: String
        let limit: Double
        let value: Double?
        let stateValue: String?
        let lastValue: Double?
        let firedAt: Date
        let lastNotifiedAt: Date
        let notifyCount: Int
        let resolvedAt: Date?
        let acknowledgedAt: Date?
        let acknowledgedBy: String?
    }

    struct Silence: Codable, ResponseEncodable {
        var id: Int64?
        var bot: String
        var metric: String?
        var until: Date
        var reason: String?
    }

    struct NotificationRecord: ResponseEncodable {
        let alertID: Int64
        let event: String
        let channel: String
        let attempt: Int
        let outcome: String
        let error: String?
        let hub: String
        let at: Date
        let durationMs: Double?
    }

    func register(on router: Router<HubRequestContext>) {
        router.get("/api/alerts") { request, _ -> [AlertRecord] in try await alerts(request.uri.queryParameters) }
        router.post("/api/alerts/:id/acknowledge") { request, context -> AlertRecord in
            let id = try context.parameters.require("id", as: Int64.self)
            let by = context.principal?.name ?? "api"
            try await client.query("""
                UPDATE alerts SET acknowledged_at = now(), acknowledged_by = \(by) WHERE id = \(id) AND acknowledged_at IS NULL
                """, logger: logger)
            guard let record = try await alerts(["id": "\(id)"]).first else { throw HTTPError(.notFound, message: "no alert \(id)") }
            return record
        }
        router.get("/api/events") { request, _ -> [AlertFeed.Entry] in
            await feed.events(after: request.uri.queryParameters.get("after", as: Int64.self) ?? 0)
        }
        router.get("/api/silences") { _, _ -> [Silence] in
            var out: [Silence] = []
            let rows = try await client.query("""
                SELECT s.id, b.name, s.metric, s.until, s.reason FROM silences s JOIN bots b ON b.id = s.bot_id
                WHERE s.until > now() ORDER BY s.until
                """, logger: logger)
            for try await (id, bot, metric, until, reason) in rows.decode((Int64, String, String?, Date, String).self) {
                out.append(Silence(id: id, bot: bot, metric: metric, until: until, reason: reason))
            }
            return out
        }
        router.post("/api/silences") { request, context -> EditedResponse<Silence> in
            var s = try await request.decode(as: Silence.self, context: context)
            let rows = try await client.query("""
                INSERT INTO silences (bot_id, metric, until, reason) SELECT id, \(s.metric), \(s.until), \(s.reason ?? "")
                FROM bots WHERE name = \(s.bot) RETURNING id
                """, logger: logger)
            guard let id = try await rows.decode(Int64.self).first(where: { _ in true }) else {
                throw HTTPError(.notFound, message: "no bot named \(s.bot)")
            }
            s.id = id
            return EditedResponse(status: .created, response: s)
        }
        router.delete("/api/silences/:id") { _, context -> HTTPResponse.Status in
            let id = try context.parameters.require("id", as: Int64.self)
            try await client.query("UPDATE silences SET until = now() WHERE id = \(id)", logger: logger)
            return .noContent
        }
        router.get("/api/notifications") { request, _ -> [NotificationRecord] in
            let alert = request.uri.queryParameters.get("alert", as: Int64.self)
            let limit = max(1, min(request.uri.queryParameters.get("limit", as: Int.self) ?? 200, 1000))
            let rows = try await client.query("""
                SELECT alert_id, event, channel, attempt, outcome, error, hub, at, duration_ms FROM notifications
                WHERE (\(alert)::int8 IS NULL OR alert_id = \(alert)) ORDER BY id DESC LIMIT \(limit)
                """, logger: logger)
            var out: [NotificationRecord] = []
            for try await (a, e, c, n, o, err, h, at, d) in rows.decode((Int64, String, String, Int, String, String?, String, Date, Double?).self) {
                out.append(NotificationRecord(alertID: a, event: e, channel: c, attempt: n, outcome: o, error: err, hub: h, at: at, durationMs: d))
            }
            return out
        }
    }

    /// Alerts filtered by `bot`, `level`, `state` (firing|resolved), `since`/`until` (ISO 8601), `id`, `limit`.
    func alerts(_ q: Parameters) async throws -> [AlertRecord] {
        let iso = ISO8601DateFormatter()
        let since = q.get("since").flatMap { iso.date(from: $0) }
        let until = q.get("until").flatMap { iso.date(from: $0) }
        let bot = q.get("bot"), level = q.get("level")?.uppercased(), state = q.get("state")?.lowercased()
        let id = q.get("id", as: Int64.self)
        let limit = max(1, min(q.get("limit", as: Int.self) ?? 200, 1000))
        let rows = try await client.query("""
            SELECT a.id, b.name, a.rule_id, a.metric, a.level, a.state, a.summary, a.limit_value, a.value, a.state_value,
                   a.last_value, a.fired_at, a.last_notified_at, a.notify_count, a.resolved_at, a.acknowledged_at, a.acknowledged_by
            FROM alerts a JOIN bots b ON b.id = a.bot_id
            WHERE (\(bot)::text IS NULL OR b.name = \(bot)) AND (\(level)::text IS NULL OR a.level = \(level))
              AND (\(state)::text IS NULL OR a.state = \(state)) AND (\(since)::timestamptz IS NULL OR a.fired_at >= \(since))
              AND (\(until)::timestamptz IS NULL OR a.fired_at < \(until)) AND (\(id)::int8 IS NULL OR a.id = \(id))
            ORDER BY a.fired_at DESC LIMIT \(limit)
            """, logger: logger)
        var out: [AlertRecord] = []
        for try await r in rows.decode((Int64, String, String, String, String, String, String, Double, Double?, String?,
                                        Double?, Date, Date, Int, Date?, Date?, String?).self) {
            out.append(AlertRecord(id: r.0, bot: r.1, rule: r.2, metric: r.3, level: r.4, state: r.5, summary: r.6, limit: r.7,
                                   value: r.8, stateValue: r.9, lastValue: r.10, firedAt: r.11, lastNotifiedAt: r.12,
                                   notifyCount: r.13, resolvedAt: r.14, acknowledgedAt: r.15, acknowledgedBy: r.16))
        }
        return out
    }
}
