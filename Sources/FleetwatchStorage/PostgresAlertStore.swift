import FleetwatchAlerting
import Foundation
import Logging
import PostgresNIO

/// Alert state in PostgreSQL. Each transition is one conditional statement; only the replica whose
/// statement changed a row gets the event, so an alert is notified once however many replicas see it.
public struct PostgresAlertStore: AlertStore {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
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
    /// NOTIFY channel that tells every replica's alert engine to re-read rules (payload: a bot, or "*").
    public static let channel = "fleetwatch_thresholds"

    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The rules `bot` is held to now.
    public func profile(bot: String) async throws -> ThresholdProfile {
        try await thresholds(bot: bot)?.profile ?? ThresholdProfile.standard
    }

    /// The rules `bot` is held to, and where each limit and level comes from; nil for an unknown bot.
    public func thresholds(bot: String) async throws -> BotThresholds? {
        let rows = try await client.query("""
            SELECT COALESCE(p.name, 'default'), COALESCE(p.base, 'default'), COALESCE(p.limits, '{}')::text,
                   COALESCE(p.levels, '{}')::text, COALESCE(p.enable_emergency_shutdown, false), b.profile IS NULL,
                   COALESCE((SELECT jsonb_object_agg(t.rule_id, t.limit_value) FROM bot_thresholds t
                             WHERE t.bot_id = b.id AND t.limit_value IS NOT NULL), '{}')::text,
                   COALESCE((SELECT jsonb_object_agg(t.rule_id, t.level) FROM bot_thresholds t
                             WHERE t.bot_id = b.id AND t.level IS NOT NULL), '{}')::text
            FROM bots b
            LEFT JOIN threshold_profiles p
                   ON p.name = COALESCE(b.profile, (SELECT value FROM fleet_settings WHERE key = 'default_profile'), 'default')
            WHERE b.name = \(bot)
            """, logger: logger)
        for try await (name, base, limits, levels, shutdown, followsDefault, botLimits, botLevels)
            in rows.decode((String, String, String, String, Bool, Bool, String, String).self) {
            let own = ThresholdSettings(limits: Self.decode(limits), levels: Self.decodeLevels(levels))
            let bots = ThresholdSettings(limits: Self.decode(botLimits), levels: Self.decodeLevels(botLevels))
            var p = (ThresholdProfile.builtIn[base] ?? .standard).applying(own).applying(bots)
            p.name = name
            p.enableEmergencyShutdown = shutdown
            let profileSource: ThresholdSource = followsDefault ? .fleetDefault : .profile
            var limitSources: [String: ThresholdSource] = [:], levelSources: [String: ThresholdSource] = [:]
            let overridden = Set(bots.limits.keys.map { $0.hasSuffix(ThresholdProfile.hysteresisSuffix)
                ? String($0.dropLast(ThresholdProfile.hysteresisSuffix.count)) : $0 })
            for rule in p.rules {
                limitSources[rule.id] = overridden.contains(rule.id) ? .botOverride : profileSource
                levelSources[rule.id] = bots.levels[rule.id] != nil ? .botOverride : profileSource
            }
            let effective = p.withEmergencyRules()
            for rule in effective.rules where rule.id.hasPrefix(ThresholdProfile.emergencyPrefix) {
                let base = String(rule.id.dropFirst(ThresholdProfile.emergencyPrefix.count))
                limitSources[rule.id] = limitSources[base] ?? profileSource
                levelSources[rule.id] = profileSource
            }
            return BotThresholds(profile: effective, profileName: name, followsFleetDefault: followsDefault,
                                 limitSources: limitSources, levelSources: levelSources)
        }
        return nil
    }

    /// A JSON object of numbers (a profile's `limits`), empty if malformed.
    public static func decode(_ json: String) -> [String: Double] {
        (try? JSONDecoder().decode([String: Double].self, from: Data(json.utf8))) ?? [:]
    }

    /// A JSON object of level names (a profile's `levels`); malformed entries are left out.
    public static func decodeLevels(_ json: String) -> [String: AlertLevel] {
        ((try? JSONDecoder().decode([String: String].self, from: Data(json.utf8))) ?? [:]).compactMapValues { AlertLevel(rawValue: $0) }
    }
}

/// The rules one bot is held to, and where they come from.
public struct BotThresholds: Sendable {
    /// The effective rules (with the automatic-shutdown rules when the profile turns them on).
    public var profile: ThresholdProfile
    /// The profile the bot follows: its own, or the fleet's default.
    public var profileName: String
    /// Whether the bot has no profile of its own and follows the fleet's default.
    public var followsFleetDefault: Bool
    /// Rule id → where its limit (and hysteresis) comes from.
    public var limitSources: [String: ThresholdSource]
    /// Rule id → where its level comes from.
    public var levelSources: [String: ThresholdSource]
}
