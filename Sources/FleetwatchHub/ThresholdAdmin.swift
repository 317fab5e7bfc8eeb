import FleetwatchAlerting
import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

/// Reads and changes threshold profiles and per-bot overrides in PostgreSQL. Changes apply to the next
/// batch (the alert engine re-reads a bot's rules every couple of seconds).
struct ThresholdAdmin: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// The NOTIFY channel that tells every replica's alert engine to re-read rules.
    static let channel = "fleetwatch_thresholds"

    /// Tells every replica that `bot`'s rules (every bot's, for "*") changed.
    func announce(_ bot: String) async throws {
        try await client.query("SELECT pg_notify(\(Self.channel), \(bot))", logger: logger)
    }

    /// A configuration file's `thresholds` become the profile `custom` (the default rule set with those limits).
    func applyConfigurationProfile(_ configuration: HubConfiguration) async throws {
        guard !configuration.thresholds.isEmpty else { return }
        try await upsertProfile(name: "custom", base: "default", limits: configuration.thresholds,
                                enableEmergencyShutdown: configuration.monitoring.enableEmergencyShutdown)
        logger.info("threshold profile 'custom' set from \(configuration.profile): \(configuration.thresholds)")
    }

    func upsertProfile(name: String, base: String, limits: [String: Double], enableEmergencyShutdown: Bool) async throws {
        let json = String(decoding: try JSONEncoder().encode(limits), as: UTF8.self)
        try await client.query("""
            INSERT INTO threshold_profiles (name, base, limits, enable_emergency_shutdown)
            VALUES (\(name), \(base), \(json)::jsonb, \(enableEmergencyShutdown))
            ON CONFLICT (name) DO UPDATE SET base = EXCLUDED.base, limits = EXCLUDED.limits,
                enable_emergency_shutdown = EXCLUDED.enable_emergency_shutdown, updated_at = now()
            """, logger: logger)
        try await announce("*")
    }

    /// Every profile with its effective rules.
    func profiles() async throws -> [ThresholdProfile] {
        let rows = try await client.query("SELECT name, base, limits::text, enable_emergency_shutdown FROM threshold_profiles ORDER BY name",
                                          logger: logger)
        var out: [ThresholdProfile] = []
        for try await (name, base, limits, shutdown) in rows.decode((String, String, String, Bool).self) {
            var p = (ThresholdProfile.builtIn[base] ?? .standard).overriding(PostgresProfileSource.decode(limits)).profile
            p.name = name
            p.enableEmergencyShutdown = shutdown
            out.append(p)
        }
        return out
    }

    /// Sets overrides for one bot; returns unknown rule ids (nothing is written if any is unknown).
    func setOverrides(bot: String, limits: [String: Double], by: String) async throws -> [String] {
        let unknown = limits.keys.filter { !ThresholdProfile.isOverrideKey($0) }.sorted()
        guard unknown.isEmpty else { return unknown }
        let ids = Array(limits.keys), values = ids.map { limits[$0]! }
        try await client.query("""
            INSERT INTO bot_thresholds (bot_id, rule_id, limit_value, updated_by)
            SELECT b.id, r.rule_id, r.limit_value, \(by) FROM bots b, unnest(\(ids)::text[], \(values)::float8[]) AS r(rule_id, limit_value)
            WHERE b.name = \(bot)
            ON CONFLICT (bot_id, rule_id) DO UPDATE SET limit_value = EXCLUDED.limit_value, updated_at = now(), updated_by = EXCLUDED.updated_by
            """, logger: logger)
        try await announce(bot)
        return []
    }

    func removeOverride(bot: String, rule: String) async throws {
        try await client.query("""
            DELETE FROM bot_thresholds t USING bots b WHERE b.id = t.bot_id AND b.name = \(bot) AND t.rule_id = \(rule)
            """, logger: logger)
        try await announce(bot)
    }

    /// Moves a bot to another profile; false if the bot or profile does not exist.
    func setProfile(bot: String, profile: String) async throws -> Bool {
        let rows = try await client.query("""
            UPDATE bots SET profile = \(profile) WHERE name = \(bot) AND EXISTS (SELECT 1 FROM threshold_profiles WHERE name = \(profile))
            RETURNING id
            """, logger: logger)
        for try await _ in rows.decode(Int32.self) {
            try await announce(bot)
            return true
        }
        return false
    }
}
