import FleetwatchAlerting
import Foundation
import Logging
import PostgresNIO

/// Threshold profiles, per-bot overrides and the fleet's default profile in PostgreSQL. Every change NOTIFYs
/// `PostgresProfileSource.channel`, so each replica's alert engine re-reads the rules before the next batch.
public struct ThresholdStore: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Tells every replica that `bot`'s rules (every bot's, for "*") changed.
    public func announce(_ bot: String) async throws {
        try await client.query("SELECT pg_notify(\(PostgresProfileSource.channel), \(bot))", logger: logger)
    }

    /// Creates or replaces a stored profile: a built-in `base` with `settings` applied.
    public func upsertProfile(name: String, base: String, settings: ThresholdSettings, enableEmergencyShutdown: Bool) async throws {
        let limits = String(decoding: try JSONEncoder().encode(settings.limits), as: UTF8.self)
        let levels = String(decoding: try JSONEncoder().encode(settings.levels.mapValues(\.rawValue)), as: UTF8.self)
        try await client.query("""
            INSERT INTO threshold_profiles (name, base, limits, levels, enable_emergency_shutdown)
            VALUES (\(name), \(base), \(limits)::jsonb, \(levels)::jsonb, \(enableEmergencyShutdown))
            ON CONFLICT (name) DO UPDATE SET base = EXCLUDED.base, limits = EXCLUDED.limits, levels = EXCLUDED.levels,
                enable_emergency_shutdown = EXCLUDED.enable_emergency_shutdown, updated_at = now()
            """, logger: logger)
        try await announce("*")
    }

    /// Every stored profile with its effective rules.
    public func profiles() async throws -> [ThresholdProfile] {
        let rows = try await client.query("""
            SELECT name, base, limits::text, levels::text, enable_emergency_shutdown FROM threshold_profiles ORDER BY name
            """, logger: logger)
        var out: [ThresholdProfile] = []
        for try await (name, base, limits, levels, shutdown) in rows.decode((String, String, String, String, Bool).self) {
            var p = (ThresholdProfile.builtIn[base] ?? .standard)
                .applying(ThresholdSettings(limits: PostgresProfileSource.decode(limits), levels: PostgresProfileSource.decodeLevels(levels)))
            p.name = name
            p.enableEmergencyShutdown = shutdown
            out.append(p)
        }
        return out
    }

    /// Sets overrides for one bot (limits, hysteresis, levels); returns the unknown keys (nothing is written if
    /// any is unknown), nil if there is no such bot.
    public func setOverrides(bot: String, settings: ThresholdSettings, by: String) async throws -> [String]? {
        let unknown = settings.unknownKeys()
        guard unknown.isEmpty else { return unknown }
        let ids = Array(Set(settings.limits.keys).union(settings.levels.keys.map { $0 }))
        // Arrays of optionals do not bind: NaN and "" stand for "not set" and become NULL below.
        let limits = ids.map { settings.limits[$0] ?? .nan }, levels = ids.map { settings.levels[$0]?.rawValue ?? "" }
        let rows = try await client.query("""
            WITH b AS (SELECT id FROM bots WHERE name = \(bot)),
            ins AS (
                INSERT INTO bot_thresholds (bot_id, rule_id, limit_value, level, updated_by)
                SELECT b.id, r.rule_id, NULLIF(r.limit_value, 'NaN'::float8), NULLIF(r.level, ''), \(by)
                FROM b, unnest(\(ids)::text[], \(limits)::float8[], \(levels)::text[]) AS r(rule_id, limit_value, level)
                ON CONFLICT (bot_id, rule_id) DO UPDATE SET
                    limit_value = COALESCE(EXCLUDED.limit_value, bot_thresholds.limit_value),
                    level = COALESCE(EXCLUDED.level, bot_thresholds.level), updated_at = now(), updated_by = EXCLUDED.updated_by
                RETURNING 1)
            SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM ins)
            """, logger: logger)
        var found = false
        for try await (n, _) in rows.decode((Int64, Int64).self) { found = n > 0 }
        guard found else { return nil }
        try await announce(bot)
        return []
    }

    /// Removes one override of `bot` (`rule_id`, `rule_id.hysteresis` or `rule_id.level`).
    public func removeOverride(bot: String, key: String) async throws {
        if key.hasSuffix(ThresholdSettings.levelSuffix) {
            let rule = String(key.dropLast(ThresholdSettings.levelSuffix.count))
            try await client.query("""
                WITH u AS (UPDATE bot_thresholds t SET level = NULL FROM bots b
                           WHERE b.id = t.bot_id AND b.name = \(bot) AND t.rule_id = \(rule) RETURNING t.bot_id, t.rule_id)
                DELETE FROM bot_thresholds t USING u WHERE t.bot_id = u.bot_id AND t.rule_id = u.rule_id AND t.limit_value IS NULL
                """, logger: logger)
        } else {
            try await client.query("""
                DELETE FROM bot_thresholds t USING bots b
                WHERE b.id = t.bot_id AND b.name = \(bot) AND t.rule_id = \(key) AND t.level IS NULL
                """, logger: logger)
            try await client.query("""
                UPDATE bot_thresholds t SET limit_value = NULL FROM bots b WHERE b.id = t.bot_id AND b.name = \(bot) AND t.rule_id = \(key)
                """, logger: logger)
        }
        try await announce(bot)
    }

    /// Moves a bot to a stored profile, or back to the fleet's default (nil); false if the bot or profile does
    /// not exist.
    public func setProfile(bot: String, profile: String?) async throws -> Bool {
        let rows = try await client.query("""
            UPDATE bots SET profile = \(profile) WHERE name = \(bot)
              AND (\(profile)::text IS NULL OR EXISTS (SELECT 1 FROM threshold_profiles WHERE name = \(profile)))
            RETURNING id
            """, logger: logger)
        for try await _ in rows.decode(Int32.self) {
            try await announce(bot)
            return true
        }
        return false
    }

    /// The profile every bot without its own follows.
    public func defaultProfile() async throws -> String {
        try await client.query("SELECT value FROM fleet_settings WHERE key = 'default_profile'", logger: logger)
            .decode(String.self).first { _ in true } ?? "default"
    }

    /// Makes `profile` the fleet's default, for every replica at once; false if no such profile is stored.
    @discardableResult
    public func setDefaultProfile(_ profile: String, by: String) async throws -> Bool {
        let rows = try await client.query("""
            WITH u AS (
                INSERT INTO fleet_settings (key, value, updated_by)
                SELECT 'default_profile', \(profile), \(by) WHERE EXISTS (SELECT 1 FROM threshold_profiles WHERE name = \(profile))
                ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by
                RETURNING 1)
            SELECT count(*) FROM u
            """, logger: logger)
        var changed = false
        for try await n in rows.decode(Int64.self) { changed = n > 0 }
        if changed { try await announce("*") }
        return changed
    }

    /// The metric names `bot` has ever had stored (its admitted names).
    public func metricNames(bot: String) async throws -> Set<String> {
        var names = Set<String>()
        for try await name in try await client.query("""
            SELECT m.name FROM bot_metrics bm JOIN metrics m ON m.id = bm.metric_id JOIN bots b ON b.id = bm.bot_id
            WHERE b.name = \(bot)
            """, logger: logger).decode(String.self) { names.insert(name) }
        return names
    }
}
