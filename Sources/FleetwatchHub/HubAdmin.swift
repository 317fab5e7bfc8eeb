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

    public typealias BotSummary = BotRegistry.Summary

    /// Runs `body` against a migrated database.
    func withDatabase<T: Sendable>(_ body: @Sendable @escaping (PostgresClient) async throws -> T) async throws -> T {
        let database = try await HubDatabase.open(configuration, logger: logger)
        defer { database.close() }
        let logger = self.logger
        return try await withRunningClient(try database.makeClient(maxConnections: 2, logger: logger)) { client in
            try await Migrator(client: client, logger: logger).migrate()
            return try await body(client)
        }
    }

    public func migrate() async throws -> [Int] {
        let database = try await HubDatabase.open(configuration, logger: logger)
        defer { database.close() }
        let logger = self.logger
        return try await withRunningClient(try database.makeClient(maxConnections: 2, logger: logger)) { client in
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
        switch try await withDatabase({ client in try await BotRegistry(client: client, logger: logger).add(bot, profile: profile, tokenHash: hash) }) {
        case .added: return token
        case .noSuchProfile: throw StorageError("no threshold profile named \(profile ?? "") (built in: default, production, development)")
        case .exists: throw StorageError("bot \(bot) already exists; use `monitor-hub bots rotate-token \(bot)` for a new token")
        }
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
        let found = try await withDatabase { client in try await BotRegistry(client: client, logger: logger).setToken(bot, hash: hash) }
        guard found else { throw StorageError("no bot named \(bot); add it with `monitor-hub bots add \(bot)`") }
    }

    public func listBots() async throws -> [BotSummary] {
        let logger = self.logger
        return try await withDatabase { client in try await BotRegistry(client: client, logger: logger).list() }
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
        let found = try await withDatabase { client in try await BotRegistry(client: client, logger: logger).setLiquidation(bot, allowed: allowed) }
        guard found else { throw StorageError("no bot named \(bot)") }
    }

    /// A bot's own limit of distinct metric names (nil: the hub's `hub.max_metric_names_per_bot`), and how many
    /// names it has used. Every replica forgets what it cached of the bot at once (NOTIFY).
    public func setMetricNameLimit(bot: String, limit: Int?) async throws -> (limit: Int?, used: Int) {
        if let limit, !(1...1_000_000).contains(limit) { throw StorageError("a metric-name limit is 1–1000000") }
        let logger = self.logger
        let row = try await withDatabase { client in try await BotRegistry(client: client, logger: logger).setMetricNameLimit(bot, limit: limit) }
        guard let row else { throw StorageError("no bot named \(bot)") }
        return row
    }

    /// The metric names `bot` has used, in the order it first sent them.
    public func metricNames(bot: String) async throws -> (limit: Int?, names: [String]) {
        let logger = self.logger
        let found = try await withDatabase { client in try await BotRegistry(client: client, logger: logger).metricNames(bot) }
        guard let found else { throw StorageError("no bot named \(bot)") }
        return found
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
            return try await withRunningClient(PostgresClient(configuration: try url.clientConfiguration(maxConnections: 2), backgroundLogger: logger)) { client in
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
            let review = WeeklyReview(client: client, logger: logger)
            var total = 0
            var start = from
            var done = 0
            while start < to {
                let end = min(start.addingTimeInterval(86_400), to)
                total += try await review.rollup(from: start, to: end)
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
        try await withRunningClient(try database.makeClient(maxConnections: 2, logger: logger)) { client in
            try await Migrator(client: client, logger: logger).migrate()
        }
        return try await withRunningClient(PostgresClient(configuration: try admin.clientConfiguration(maxConnections: 1), backgroundLogger: logger)) { client in
            let analysts = Analysts(client: client, logger: logger)
            if given == nil {
                try await analysts.create(name, password: password)
                return (password, true)
            }
            return (password, try await analysts.ensure(name, password: password))
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
        let applied = try await withRunningClient(PostgresClient(configuration: try url.clientConfiguration(maxConnections: 2), backgroundLogger: logger)) { client in
            try await Migrator(client: client, logger: logger).migrate()
        }
        return (url.username, url.database, applied)
    }
}
