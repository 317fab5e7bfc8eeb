import FleetwatchAlerting
import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

/// One-shot operator commands against the hub's database: migrations and bot tokens.
public struct HubAdmin: Sendable {
    let configuration: HubConfiguration
    let logger: Logger

    public init(configuration: HubConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public struct BotSummary: Sendable {
        public let name: String
        public let profile: String
        public let hasToken: Bool
        public let connected: Bool
        public let lastSeen: Date?
    }

    /// Runs `body` against a migrated database.
    func withDatabase<T: Sendable>(_ body: @Sendable @escaping (PostgresClient) async throws -> T) async throws -> T {
        let database = try await HubDatabase.open(configuration, logger: logger)
        defer { database.close() }
        let logger = self.logger
        return try await withPostgresClient(try database.makeClient(maxConnections: 2, logger: logger)) { client in
            try await Migrator(client: client, logger: logger).migrate()
            return try await body(client)
        }
    }

    public func migrate() async throws -> [Int] {
        let database = try await HubDatabase.open(configuration, logger: logger)
        defer { database.close() }
        let logger = self.logger
        return try await withPostgresClient(try database.makeClient(maxConnections: 2, logger: logger)) { client in
            try await Migrator(client: client, logger: logger).migrate()
        }
    }

    /// Registers `bot` and returns its new token. Without `profile` the bot follows the fleet's default profile.
    public func addBot(_ bot: String, profile: String?) async throws -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/-")
        guard (1...128).contains(bot.count), bot.allSatisfy(allowed.contains) else {
            throw StorageError("a bot name is 1–128 characters of A–Z a–z 0–9 _ . : / - (the agent's bot id)")
        }
        let token = BotToken.generate()
        let hash = BotToken.hash(token)
        let logger = self.logger
        let inserted = try await withDatabase { client in
            if let profile, try await client.query("SELECT 1 FROM threshold_profiles WHERE name = \(profile)", logger: logger)
                .decode(Int.self).first(where: { _ in true }) == nil {
                throw StorageError("no threshold profile named \(profile) (built in: default, production, development)")
            }
            return try await client.query("""
                INSERT INTO bots (name, profile, token_hash, token_issued_at) VALUES (\(bot), \(profile), \(hash), now())
                ON CONFLICT (name) DO NOTHING RETURNING id
                """, logger: logger).decode(Int32.self).first { _ in true } != nil
        }
        guard inserted else { throw StorageError("bot \(bot) already exists; use `monitor-hub bots rotate-token \(bot)` for a new token") }
        return token
    }

    /// Replaces `bot`'s token and returns the new one.
    public func rotateToken(_ bot: String) async throws -> String {
        let token = BotToken.generate()
        let hash = BotToken.hash(token)
        try await setHash(bot, hash)
        return token
    }

    /// Removes `bot`'s token: its agents are refused until a new token is issued.
    public func revoke(_ bot: String) async throws {
        try await setHash(bot, nil)
    }

    private func setHash(_ bot: String, _ hash: ByteBuffer?) async throws {
        let logger = self.logger
        let found = try await withDatabase { client in
            // The lease is taken back (nothing the old connection still sends counts), and the NOTIFY (delivered at
            // commit) makes every replica close the bot's connections at once; the lease check catches a missed one.
            try await client.query("""
                WITH u AS (UPDATE bots SET token_hash = \(hash), token_issued_at = now(), connection_id = NULL, connected_hub = NULL
                           WHERE name = \(bot) RETURNING id)
                SELECT u.id FROM u CROSS JOIN LATERAL (SELECT pg_notify(\(Self.tokenChannel), \(bot))) AS n
                """, logger: logger).decode(Int32.self).first { _ in true } != nil
        }
        guard found else { throw StorageError("no bot named \(bot); add it with `monitor-hub bots add \(bot)`") }
    }

    /// NOTIFY channel of bot token changes; the payload is the bot's name.
    static let tokenChannel = "fleetwatch_bot_tokens"

    public func listBots() async throws -> [BotSummary] {
        let logger = self.logger
        return try await withDatabase { client in
            var out: [BotSummary] = []
            let rows = try await client.query("""
                SELECT name, COALESCE(profile, 'fleet default (' || COALESCE((SELECT value FROM fleet_settings WHERE key = 'default_profile'), 'default') || ')'),
                       token_hash IS NOT NULL, connection_id IS NOT NULL, last_seen_at FROM bots ORDER BY name
                """, logger: logger)
            for try await (n, p, t, c, l) in rows.decode((String, String, Bool, Bool, Date?).self) {
                out.append(BotSummary(name: n, profile: p, hasToken: t, connected: c, lastSeen: l))
            }
            return out
        }
    }
}

extension HubAdmin {
    /// Creates an API token for `name` with `role` ("viewer" or "operator"); returns the secret (shown once).
    public func addAPIToken(name: String, role: String) async throws -> String {
        guard let r = AccessTokens.Role(rawValue: role) else { throw StorageError("role must be viewer or operator, not \(role)") }
        let logger = self.logger
        do {
            return try await withDatabase { client in try await AccessTokens(client: client, logger: logger).add(name: name, role: r) }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StorageError("an API token named \(name) exists; revoke it first (`monitor-hub tokens revoke \(name)`) or pick another name")
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23514" {
            throw StorageError("a token name is 1–64 characters of A–Z a–z 0–9 _ . @ : / -")
        }
    }

    /// Revokes `name`'s API token at once.
    public func revokeAPIToken(name: String) async throws {
        let logger = self.logger
        let revoked = try await withDatabase { client in try await AccessTokens(client: client, logger: logger).revoke(name: name) }
        guard revoked else { throw StorageError("no active API token named \(name)") }
    }

    public func listAPITokens() async throws -> [AccessTokens.Listing] {
        let logger = self.logger
        return try await withDatabase { client in try await AccessTokens(client: client, logger: logger).list() }
    }

    /// Allows or forbids emergency stops that liquidate `bot`'s positions.
    public func setLiquidation(bot: String, allowed: Bool) async throws {
        let logger = self.logger
        let found = try await withDatabase { client in
            try await client.query("UPDATE bots SET allow_liquidation = \(allowed) WHERE name = \(bot) RETURNING id", logger: logger)
                .decode(Int32.self).first { _ in true } != nil
        }
        guard found else { throw StorageError("no bot named \(bot)") }
    }

    /// A bot's own limit of distinct metric names (nil: the hub's `hub.max_metric_names_per_bot`), and how many
    /// names it has used. Every replica forgets what it cached of the bot at once (NOTIFY).
    public func setMetricNameLimit(bot: String, limit: Int?) async throws -> (limit: Int?, used: Int) {
        if let limit, !(1...1_000_000).contains(limit) { throw StorageError("a metric-name limit is 1–1000000") }
        let logger = self.logger
        let row = try await withDatabase { client in
            try await client.query("""
                WITH u AS (UPDATE bots SET max_metric_names = \(limit.map(Int32.init)) WHERE name = \(bot)
                           RETURNING id, max_metric_names)
                SELECT u.max_metric_names, (SELECT count(*) FROM bot_metrics bm WHERE bm.bot_id = u.id)
                FROM u, LATERAL (SELECT pg_notify(\(PostgresIngestStore.metricLimitChannel), u.id::text)) n
                """, logger: logger).decode((Int32?, Int64).self).first { _ in true }
        }
        guard let (stored, used) = row else { throw StorageError("no bot named \(bot)") }
        return (stored.map(Int.init), Int(used))
    }

    /// The metric names `bot` has used, in the order it first sent them.
    public func metricNames(bot: String) async throws -> (limit: Int?, names: [String]) {
        let logger = self.logger
        return try await withDatabase { client in
            guard let limit = try await client.query("SELECT max_metric_names FROM bots WHERE name = \(bot)", logger: logger)
                .decode(Int32?.self).first(where: { _ in true }) else { throw StorageError("no bot named \(bot)") }
            var names: [String] = []
            for try await name in try await client.query("""
                SELECT m.name FROM bot_metrics bm JOIN metrics m ON m.id = bm.metric_id JOIN bots b ON b.id = bm.bot_id
                WHERE b.name = \(bot) ORDER BY bm.first_seen_at, m.name
                """, logger: logger).decode(String.self) { names.append(name) }
            return (limit.map(Int.init), names)
        }
    }
}

extension HubAdmin {
    /// What `monitor-hub bots check BOT` shows: the bot's rules, where they come from, which cannot fire.
    public struct BotCheck: Sendable {
        public var thresholds: BotThresholds
        public var fleetDefault: String
        public var coverage: [RuleCoverage]
    }

    /// `bot`'s effective rules and which of them cannot fire for the metrics it has sent.
    public func checkBot(_ bot: String) async throws -> BotCheck {
        let logger = self.logger
        return try await withDatabase { client in
            let store = ThresholdStore(client: client, logger: logger)
            guard let t = try await PostgresProfileSource(client: client, logger: logger).thresholds(bot: bot) else {
                throw StorageError("no bot named \(bot)")
            }
            return BotCheck(thresholds: t, fleetDefault: try await store.defaultProfile(),
                            coverage: RuleCoverage.of(t.profile, sent: try await store.metricNames(bot: bot)))
        }
    }

    /// The fleet's default profile, after setting it to `name` if given.
    public func defaultProfile(set name: String?) async throws -> String {
        let logger = self.logger
        return try await withDatabase { client in
            let store = ThresholdStore(client: client, logger: logger)
            if let name, try await !store.setDefaultProfile(name, by: "monitor-hub") {
                throw StorageError("no threshold profile named \(name) (built in: default, production, development)")
            }
            return try await store.defaultProfile()
        }
    }

    /// Every stored threshold profile.
    public func profiles() async throws -> [ThresholdProfile] {
        let logger = self.logger
        return try await withDatabase { client in try await ThresholdStore(client: client, logger: logger).profiles() }
    }
}

extension HubAdmin {
    /// The fleet's week (ISO week, default last week).
    public func weeklyReport(week: String?, bot: String?) async throws -> WeeklyReview.Report {
        _ = try week.map(WeeklyReview.weekStart)   // a bad --week fails before touching the database
        let logger = self.logger
        if let read = configuration.readDatabaseURL {
            // A read replica takes the report's queries off the primary.
            var url = try DatabaseURL(read)
            if url.password == nil { url.password = configuration.databasePassword }
            logger.info("weekly report from the read replica \(url)")
            return try await withPostgresClient(PostgresClient(configuration: try url.clientConfiguration(maxConnections: 2), backgroundLogger: logger)) { client in
                try await WeeklyReview(client: client, logger: logger).report(week: week, bot: bot)
            }
        }
        return try await withDatabase { client in try await WeeklyReview(client: client, logger: logger).report(week: week, bot: bot) }
    }

    /// Recomputes the rollups of [from, to), a day at a time; returns the minute buckets written.
    /// `progress` hears after each day: (days done, days in all, buckets so far).
    public func rollup(from: Date, to: Date, progress: @escaping @Sendable (Int, Int, Int) -> Void = { _, _, _ in }) async throws -> Int {
        let logger = self.logger
        let days = max(1, Int((to.timeIntervalSince(from) / 86_400).rounded(.up)))
        return try await withDatabase { client in
            var total = 0
            var start = from
            var done = 0
            while start < to {
                let end = min(start.addingTimeInterval(86_400), to)
                total += try await client.query("SELECT fleetwatch_rollup(\(start), \(end))", logger: logger)
                    .decode(Int.self).first { _ in true } ?? 0
                start = end
                done += 1
                progress(done, days, total)
            }
            return total
        }
    }

    /// Creates a read-only login in the analysts' role; returns its password. With `password`, a login of that
    /// name that already exists (and is an analyst login) gets it instead (`created` false): safe to run again.
    public func addAnalyst(_ name: String, password given: String? = nil) async throws -> (password: String, created: Bool) {
        guard name.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
            throw StorageError("an analyst login is 1–63 characters of a–z 0–9 _, starting with a letter or _")
        }
        if let given, given.count < 16 {
            throw StorageError("an analyst's password needs at least 16 characters")
        }
        let password = given ?? String(BotToken.generate(prefix: "").prefix(32))
        let logger = self.logger
        // The hub's role may not create roles: a superuser does it (the embedded cluster's, or FLEETWATCH_ADMIN_DATABASE_URL).
        let database = try await HubDatabase.open(configuration, logger: logger)
        defer { database.close() }
        guard var admin = database.adminURL else {
            throw StorageError("""
                creating a PostgreSQL login needs a role that may create roles, and the hub's own may not:                 set FLEETWATCH_ADMIN_DATABASE_URL (or FLEETWATCH_ADMIN_DATABASE_URL_FILE) to a superuser's address,                 or run CREATE ROLE \(name) LOGIN PASSWORD '…' IN ROLE fleetwatch_analyst yourself
                """)
        }
        admin.database = database.url.database
        try await withPostgresClient(try database.makeClient(maxConnections: 2, logger: logger)) { client in
            try await Migrator(client: client, logger: logger).migrate()
        }
        return try await withPostgresClient(PostgresClient(configuration: try admin.clientConfiguration(maxConnections: 1), backgroundLogger: logger)) { client in
            // The name is checked above; the functions quote it (format %I) and the password (%L).
            if given == nil {
                try await client.query("SELECT fleetwatch_create_analyst(\(name), \(password))", logger: logger)
                return (password, true)
            }
            do {
                let created = try await client.query("SELECT fleetwatch_ensure_analyst(\(name), \(password))", logger: logger)
                    .decode(Bool.self).first { _ in true } ?? false
                return (password, created)
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "P0001" {
                throw StorageError(error.serverInfo?[.message] ?? "PostgreSQL refused the login \(name)")
            }
        }
    }

    /// `monitor-hub database init`: with a superuser's address (`FLEETWATCH_ADMIN_DATABASE_URL`), creates the hub's
    /// least-privileged role with the password of `FLEETWATCH_DATABASE_URL` (or `FLEETWATCH_DATABASE_PASSWORD`), its
    /// database and the analysts' role, then applies the migrations as the hub's role. Safe to run again.
    public func initializeDatabase() async throws -> (role: String, database: String, migrations: [Int]) {
        guard let string = configuration.databaseURL else {
            throw StorageError("set FLEETWATCH_DATABASE_URL (or --database-url) to the address the hub will use: its user, password and database are created")
        }
        guard let admin = try configuration.adminURL() else {
            throw StorageError("set FLEETWATCH_ADMIN_DATABASE_URL (or FLEETWATCH_ADMIN_DATABASE_URL_FILE) to a superuser's address: it creates the hub's role")
        }
        var url = try DatabaseURL(string)
        if url.password == nil { url.password = configuration.databasePassword }
        guard let password = url.password, !password.isEmpty else {
            throw StorageError("the hub's database URL has no password: give one in the URL or FLEETWATCH_DATABASE_PASSWORD(_FILE)")
        }
        try await DatabaseProbe.waitUntilReachable(admin, patience: configuration.databaseStartTimeout, logger: logger)
        try await DatabaseBootstrap.ensureHubRole(admin: admin, role: url.username, password: password, database: url.database, logger: logger)
        let logger = self.logger
        let applied = try await withPostgresClient(PostgresClient(configuration: try url.clientConfiguration(maxConnections: 2), backgroundLogger: logger)) { client in
            try await Migrator(client: client, logger: logger).migrate()
        }
        return (url.username, url.database, applied)
    }
}
