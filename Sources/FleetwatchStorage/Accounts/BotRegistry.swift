import Foundation
import Logging
import PostgresNIO

/// The registered bots as the operator's commands see them: registration, tokens, liquidation permission and
/// metric-name limits. Every change another replica must hear about is announced with NOTIFY in the same statement.
public struct BotRegistry: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// NOTIFY channel of bot token changes; the payload is the bot's name.
    public static let tokenChannel = "fleetwatch_bot_tokens"

    public struct Summary: Sendable {
        public let name: String
        public let profile: String
        public let hasToken: Bool
        public let connected: Bool
        public let lastSeen: Date?
    }

    public enum Registration: Sendable, Equatable {
        case added
        case exists
        case noSuchProfile
    }

    /// Registers `bot` with a token's hash; without `profile` the bot follows the fleet's default profile.
    public func add(_ bot: String, profile: String?, tokenHash: ByteBuffer) async throws -> Registration {
        if let profile, try await client.query("SELECT 1 FROM threshold_profiles WHERE name = \(profile)", logger: logger)
            .decode(Int.self).first(where: { _ in true }) == nil {
            return .noSuchProfile
        }
        let inserted = try await client.query("""
            INSERT INTO bots (name, profile, token_hash, token_issued_at) VALUES (\(bot), \(profile), \(tokenHash), now())
            ON CONFLICT (name) DO NOTHING RETURNING id
            """, logger: logger).decode(Int32.self).first { _ in true } != nil
        return inserted ? .added : .exists
    }

    /// Replaces (or, with nil, removes) `bot`'s token hash; false if there is no such bot.
    public func setToken(_ bot: String, hash: ByteBuffer?) async throws -> Bool {
        // The lease is taken back (nothing the old connection still sends counts), and the NOTIFY (delivered at
        // commit) makes every replica close the bot's connections at once; the lease check catches a missed one.
        try await client.query("""
            WITH u AS (UPDATE bots SET token_hash = \(hash), token_issued_at = now(), connection_id = NULL, connected_hub = NULL
                       WHERE name = \(bot) RETURNING id)
            SELECT u.id FROM u CROSS JOIN LATERAL (SELECT pg_notify(\(Self.tokenChannel), \(bot))) AS n
            """, logger: logger).decode(Int32.self).first { _ in true } != nil
    }

    /// Every registered bot, by name.
    public func list() async throws -> [Summary] {
        var out: [Summary] = []
        let rows = try await client.query("""
            SELECT name, COALESCE(profile, 'fleet default (' || COALESCE((SELECT value FROM fleet_settings WHERE key = 'default_profile'), 'default') || ')'),
                   token_hash IS NOT NULL, connection_id IS NOT NULL, last_seen_at FROM bots ORDER BY name
            """, logger: logger)
        for try await (n, p, t, c, l) in rows.decode((String, String, Bool, Bool, Date?).self) {
            out.append(Summary(name: n, profile: p, hasToken: t, connected: c, lastSeen: l))
        }
        return out
    }

    /// Allows or forbids liquidating stops for `bot`; false if there is no such bot.
    public func setLiquidation(_ bot: String, allowed: Bool) async throws -> Bool {
        try await client.query("UPDATE bots SET allow_liquidation = \(allowed) WHERE name = \(bot) RETURNING id", logger: logger)
            .decode(Int32.self).first { _ in true } != nil
    }

    /// Sets `bot`'s own limit of distinct metric names (nil: the hub's default); returns the stored limit and the
    /// names used, or nil if there is no such bot. Every replica forgets what it cached of the bot (NOTIFY).
    public func setMetricNameLimit(_ bot: String, limit: Int?) async throws -> (limit: Int?, used: Int)? {
        let row = try await client.query("""
            WITH u AS (UPDATE bots SET max_metric_names = \(limit.map(Int32.init)) WHERE name = \(bot)
                       RETURNING id, max_metric_names)
            SELECT u.max_metric_names, (SELECT count(*) FROM bot_metrics bm WHERE bm.bot_id = u.id)
            FROM u, LATERAL (SELECT pg_notify(\(PostgresIngestStore.metricLimitChannel), u.id::text)) n
            """, logger: logger).decode((Int32?, Int64).self).first { _ in true }
        return row.map { ($0.0.map(Int.init), Int($0.1)) }
    }

    /// `bot`'s metric-name limit and the names it has used, in the order it first sent them; nil if there is no
    /// such bot.
    public func metricNames(_ bot: String) async throws -> (limit: Int?, names: [String])? {
        guard let limit = try await client.query("SELECT max_metric_names FROM bots WHERE name = \(bot)", logger: logger)
            .decode(Int32?.self).first(where: { _ in true }) else { return nil }
        var names: [String] = []
        for try await name in try await client.query("""
            SELECT m.name FROM bot_metrics bm JOIN metrics m ON m.id = bm.metric_id JOIN bots b ON b.id = bm.bot_id
            WHERE b.name = \(bot) ORDER BY bm.first_seen_at, m.name
            """, logger: logger).decode(String.self) { names.append(name) }
        return (limit.map(Int.init), names)
    }

    /// Each metric's kind, by name, as the fleet has declared them.
    public func metricKinds() async throws -> [String: String] {
        var kinds: [String: String] = [:]
        for try await (name, kind) in try await client.query("SELECT name, kind FROM metrics", logger: logger).decode((String, String).self) {
            kinds[name] = kind
        }
        return kinds
    }
}
