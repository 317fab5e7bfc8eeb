import FleetwatchAlerting
import Foundation
import Logging
import PostgresNIO

/// Alert state in PostgreSQL. Each transition is one conditional statement; only the replica whose
/// statement changed a row gets the event, so an alert is notified once however many replicas see it.
public struct PostgresAlertStore: AlertStore {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func fire(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        let rows = try await client.query("""
            INSERT INTO alerts (bot_id, rule_id, metric, level, state, summary, limit_value, value, state_value, last_value)
            SELECT id, \(rule.id), \(rule.metric), \(rule.level.rawValue), 'firing', \(rule.summary), \(rule.limit),
                   \(value), \(state), \(value)
            FROM bots WHERE name = \(bot)
            ON CONFLICT (bot_id, rule_id) WHERE state = 'firing' DO NOTHING
            RETURNING id, fired_at
            """, logger: logger)
        for try await (id, firedAt) in rows.decode((Int64, Date).self) {
            return AlertEvent(alertID: id, kind: .fired, bot: bot, ruleID: rule.id, metric: rule.metric, level: rule.level,
                              value: value, limit: rule.limit, summary: rule.summary, firedAt: firedAt, at: firedAt, state: state)
        }
        return nil
    }

    public func repeatIfDue(bot: String, rule: Rule, value: Double, state: String?, cooldownMs: Int64) async throws -> AlertEvent? {
        let rows = try await client.query("""
            UPDATE alerts a SET last_notified_at = now(), notify_count = a.notify_count + 1, last_value = \(value)
            FROM bots b
            WHERE b.id = a.bot_id AND b.name = \(bot) AND a.rule_id = \(rule.id) AND a.state = 'firing'
              AND a.last_notified_at <= now() - \(cooldownMs) * interval '1 millisecond'
            RETURNING a.id, a.fired_at, a.last_notified_at
            """, logger: logger)
        for try await (id, firedAt, at) in rows.decode((Int64, Date, Date).self) {
            return AlertEvent(alertID: id, kind: .repeated, bot: bot, ruleID: rule.id, metric: rule.metric, level: rule.level,
                              value: value, limit: rule.limit, summary: rule.summary, firedAt: firedAt, at: at, state: state)
        }
        return nil
    }

    public func resolve(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        let rows = try await client.query("""
            UPDATE alerts a SET state = 'resolved', resolved_at = now(), resolved_value = \(value)
            FROM bots b
            WHERE b.id = a.bot_id AND b.name = \(bot) AND a.rule_id = \(rule.id) AND a.state = 'firing'
            RETURNING a.id, a.fired_at, a.resolved_at, a.level, a.limit_value, a.summary, a.metric
            """, logger: logger)
        for try await (id, firedAt, at, level, limit, summary, metric) in rows.decode((Int64, Date, Date, String, Double, String, String).self) {
            return AlertEvent(alertID: id, kind: .resolved, bot: bot, ruleID: rule.id, metric: metric,
                              level: AlertLevel(rawValue: level) ?? rule.level, value: value, limit: limit, summary: summary,
                              firedAt: firedAt, at: at, state: state)
        }
        return nil
    }

    public func firingRules(bot: String) async throws -> Set<String> {
        let rows = try await client.query("""
            SELECT a.rule_id FROM alerts a JOIN bots b ON b.id = a.bot_id WHERE b.name = \(bot) AND a.state = 'firing'
            """, logger: logger)
        var out = Set<String>()
        for try await id in rows.decode(String.self) { out.insert(id) }
        return out
    }

    public func isSilenced(bot: String, metric: String) async throws -> Bool {
        let rows = try await client.query("""
            SELECT 1 FROM silences s JOIN bots b ON b.id = s.bot_id
            WHERE b.name = \(bot) AND s.until > now() AND (s.metric IS NULL OR s.metric = \(metric)) LIMIT 1
            """, logger: logger)
        for try await _ in rows.decode(Int.self) { return true }
        return false
    }
}

/// Each bot's effective rules: its profile's base rule set, the profile's limits, then the bot's overrides.
public struct PostgresProfileSource: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func profile(bot: String) async throws -> ThresholdProfile {
        let rows = try await client.query("""
            SELECT p.name, p.base, p.limits::text, p.enable_emergency_shutdown,
                   COALESCE((SELECT jsonb_object_agg(t.rule_id, t.limit_value) FROM bot_thresholds t WHERE t.bot_id = b.id), '{}')::text
            FROM bots b JOIN threshold_profiles p ON p.name = b.profile WHERE b.name = \(bot)
            """, logger: logger)
        for try await (name, base, limits, shutdown, overrides) in rows.decode((String, String, String, Bool, String).self) {
            var p = (ThresholdProfile.builtIn[base] ?? .standard)
                .overriding(Self.decode(limits)).profile
                .overriding(Self.decode(overrides)).profile
            p.name = name
            p.enableEmergencyShutdown = shutdown
            return p.withEmergencyRules()
        }
        return .standard
    }

    /// A JSON object of numbers (a profile's `limits`), empty if malformed.
    public static func decode(_ json: String) -> [String: Double] {
        (try? JSONDecoder().decode([String: Double].self, from: Data(json.utf8))) ?? [:]
    }
}
