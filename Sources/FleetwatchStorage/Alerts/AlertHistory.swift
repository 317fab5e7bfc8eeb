import Foundation
import Logging
import PostgresNIO

/// What the alert API reads and changes besides the alerts' own transitions (`PostgresAlertStore`): the alert
/// list, acknowledgements, silences and the notification ledger.
public struct AlertHistory: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public struct Alert: Sendable, Codable, Equatable {
        public let id: Int64
        public let bot: String
        public let rule: String
        public let metric: String
        public let level: String
        public let state: String
        public let summary: String
        public let limit: Double
        public let value: Double?
        public let stateValue: String?
        public let lastValue: Double?
        public let firedAt: Date
        public let lastNotifiedAt: Date
        public let notifyCount: Int
        public let resolvedAt: Date?
        public let acknowledgedAt: Date?
        public let acknowledgedBy: String?
    }

    /// Which alerts to list; nil fields do not filter.
    public struct Filter: Sendable {
        public var bot: String?
        public var level: String?
        public var state: String?
        public var since: Date?
        public var until: Date?
        public var id: Int64?
        public var limit = 200

        public init(bot: String? = nil, level: String? = nil, state: String? = nil, since: Date? = nil, until: Date? = nil,
                    id: Int64? = nil, limit: Int = 200) {
            (self.bot, self.level, self.state, self.since, self.until, self.id, self.limit) = (bot, level, state, since, until, id, limit)
        }
    }

    public struct Silence: Sendable, Codable, Equatable {
        public var id: Int64?
        public var bot: String
        public var metric: String?
        public var until: Date
        public var reason: String?
    }

    public struct Notification: Sendable, Codable, Equatable {
        public let alertID: Int64
        public let event: String
        public let channel: String
        public let attempt: Int
        public let outcome: String
        public let error: String?
        public let hub: String
        public let at: Date
        public let durationMs: Double?
    }

    /// Alerts newest first (at most 1,000).
    public func alerts(_ f: Filter) async throws -> [Alert] {
        let limit = max(1, min(f.limit, 1000))
        let rows = try await client.query("""
            SELECT a.id, b.name, a.rule_id, a.metric, a.level, a.state, a.summary, a.limit_value, a.value, a.state_value,
                   a.last_value, a.fired_at, a.last_notified_at, a.notify_count, a.resolved_at, a.acknowledged_at, a.acknowledged_by
            FROM alerts a JOIN bots b ON b.id = a.bot_id
            WHERE (\(f.bot)::text IS NULL OR b.name = \(f.bot)) AND (\(f.level)::text IS NULL OR a.level = \(f.level))
              AND (\(f.state)::text IS NULL OR a.state = \(f.state)) AND (\(f.since)::timestamptz IS NULL OR a.fired_at >= \(f.since))
              AND (\(f.until)::timestamptz IS NULL OR a.fired_at < \(f.until)) AND (\(f.id)::int8 IS NULL OR a.id = \(f.id))
            ORDER BY a.fired_at DESC LIMIT \(limit)
            """, logger: logger)
        var out: [Alert] = []
        for try await r in rows.decode((Int64, String, String, String, String, String, String, Double, Double?, String?,
                                        Double?, Date, Date, Int, Date?, Date?, String?).self) {
            out.append(Alert(id: r.0, bot: r.1, rule: r.2, metric: r.3, level: r.4, state: r.5, summary: r.6, limit: r.7,
                             value: r.8, stateValue: r.9, lastValue: r.10, firedAt: r.11, lastNotifiedAt: r.12,
                             notifyCount: r.13, resolvedAt: r.14, acknowledgedAt: r.15, acknowledgedBy: r.16))
        }
        return out
    }

    /// Acknowledges alert `id` by `by` (the first acknowledgement stays); the alert, nil if there is none.
    public func acknowledge(id: Int64, by: String) async throws -> Alert? {
        try await client.query("""
            UPDATE alerts SET acknowledged_at = now(), acknowledged_by = \(by) WHERE id = \(id) AND acknowledged_at IS NULL
            """, logger: logger)
        return try await alerts(Filter(id: id)).first
    }

    /// Silences in force, soonest end first.
    public func activeSilences() async throws -> [Silence] {
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

    /// Stores a silence; its id, nil if the bot is unknown.
    public func addSilence(_ s: Silence) async throws -> Int64? {
        let rows = try await client.query("""
            INSERT INTO silences (bot_id, metric, until, reason) SELECT id, \(s.metric), \(s.until), \(s.reason ?? "")
            FROM bots WHERE name = \(s.bot) RETURNING id
            """, logger: logger)
        return try await rows.decode(Int64.self).first { _ in true }
    }

    /// Ends a silence now (an unknown id changes nothing).
    public func endSilence(id: Int64) async throws {
        try await client.query("UPDATE silences SET until = now() WHERE id = \(id)", logger: logger)
    }

    /// Notification attempts newest first, of one alert or all (at most 1,000).
    public func notifications(alert: Int64?, limit: Int) async throws -> [Notification] {
        let limit = max(1, min(limit, 1000))
        let rows = try await client.query("""
            SELECT alert_id, event, channel, attempt, outcome, error, hub, at, duration_ms FROM notifications
            WHERE (\(alert)::int8 IS NULL OR alert_id = \(alert)) ORDER BY id DESC LIMIT \(limit)
            """, logger: logger)
        var out: [Notification] = []
        for try await (a, e, c, n, o, err, h, at, d) in rows.decode((Int64, String, String, Int, String, String?, String, Date, Double?).self) {
            out.append(Notification(alertID: a, event: e, channel: c, attempt: n, outcome: o, error: err, hub: h, at: at, durationMs: d))
        }
        return out
    }

    /// One delivery attempt of an alert event, for the notification ledger.
    public struct Delivery: Sendable, Equatable {
        public var alertID: Int64
        public var event: String
        public var channel: String
        public var attempt: Int
        public var outcome: String
        public var error: String?
        /// When the attempt ended (the ledger row's `at`).
        public var at: Date
        public var durationMs: Double

        public init(alertID: Int64, event: String, channel: String, attempt: Int, outcome: String, error: String?, at: Date,
                    durationMs: Double) {
            self.alertID = alertID
            self.event = event
            self.channel = channel
            self.attempt = attempt
            self.outcome = outcome
            // PostgreSQL refuses a NUL character in text; a receiver's reply quoted in an error may hold one.
            self.error = error.map { $0.contains("\u{0}") ? $0.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : $0 }
            self.at = at
            self.durationMs = durationMs
        }
    }

    /// Records delivery attempts in the notification ledger, in their order, in one statement.
    public func recordDeliveries(_ deliveries: [Delivery], hub: String) async throws {
        guard !deliveries.isEmpty else { return }
        let ids = deliveries.map(\.alertID), events = deliveries.map(\.event), channels = deliveries.map(\.channel)
        let attempts = deliveries.map { Int32(clamping: $0.attempt) }, outcomes = deliveries.map(\.outcome)
        let errors = deliveries.map { $0.error ?? "" }, hasError = deliveries.map { $0.error != nil }
        let ats = deliveries.map(\.at), durations = deliveries.map(\.durationMs)
        try await client.query("""
            INSERT INTO notifications (alert_id, event, channel, attempt, outcome, error, hub, at, duration_ms)
            SELECT a, e, c, n, o, CASE WHEN he THEN err END, \(hub), t, d
            FROM unnest(\(ids)::int8[], \(events)::text[], \(channels)::text[], \(attempts)::int4[], \(outcomes)::text[],
                        \(errors)::text[], \(hasError)::bool[], \(ats)::timestamptz[], \(durations)::float8[])
                 WITH ORDINALITY AS u(a, e, c, n, o, err, he, t, d, i)
            ORDER BY i
            """, logger: logger)
    }
}
