import ArgumentParser
import FleetwatchHub
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the hub: agent endpoint, API and dashboard.")

    @OptionGroup var common: CommonOptions

    @Option(help: "Port for agents, API and dashboard (default 8000).")
    var port: Int?

    @Option(help: "Same as --port (the reference system's name).")
    var dashboardPort: Int?

    @Option(help: "Address to bind (default 127.0.0.1; 0.0.0.0 for all interfaces).")
    var host: String?

    @Flag(help: "Serve no dashboard (agents and API only).")
    var noDashboard = false

    @Flag(help: "Let unknown bots register themselves with the token they present (demo only).")
    var autoRegister = false

    @Option(help: "This replica's name in the bot registry (default: hub).")
    var hubId: String?

    @Option(help: "PEM certificate chain: serve HTTPS and wss:// (with --tls-key).")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert.")
    var tlsKey: String?

    @Option(help: "Log lines as text (default) or json: one JSON object per line, for log shippers.")
    var logFormat: HubConfiguration.LogFormat?

    func run() async throws {
        var c = try common.load()
        if let p = port ?? dashboardPort { c.port = p }
        if let host { c.host = host }
        if noDashboard { c.dashboardEnabled = false }
        if autoRegister { c.autoRegister = true }
        if let hubId { c.ingest.hubID = hubId }
        if let tlsCert { c.tlsCertificatePath = tlsCert }
        if let tlsKey { c.tlsKeyPath = tlsKey }
        guard (c.tlsCertificatePath == nil) == (c.tlsKeyPath == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        if let logFormat { c.logFormat = logFormat }
        let level = c.logLevel
        switch c.logFormat {
        case .text:
            LoggingSystem.bootstrap { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = level
                return h
            }
        case .json:
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        }

        let logger = Logger(label: "fleetwatch.hub")
        logger.info("starting hub with profile \(c.profile)")
        try await HubApplication(configuration: c, logger: logger).run()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending schema migrations and exit.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let c = try common.load()
        let logger = Logger(label: "fleetwatch.migrate")
        let applied = try await HubAdmin(configuration: c, logger: logger).migrate()
        print(applied.isEmpty ? "schema is up to date" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
    }
}

struct Database: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prepare a PostgreSQL server for the hub.", subcommands: [Initialize.self])

    struct Initialize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create the hub's least-privileged role, its database and the analysts' role, then migrate.",
            discussion: """
                Connects as FLEETWATCH_ADMIN_DATABASE_URL (a superuser, or a role with CREATEROLE and CREATEDB; or the
                file named by FLEETWATCH_ADMIN_DATABASE_URL_FILE) and creates the user, password and database of
                FLEETWATCH_DATABASE_URL (password also from FLEETWATCH_DATABASE_PASSWORD_FILE): a role that owns its
                database and nothing else. Run it once per server; running it again only sets the password.
                  FLEETWATCH_ADMIN_DATABASE_URL_FILE=/run/secrets/pg-admin-url \\
                  FLEETWATCH_DATABASE_URL=postgres://fleetwatch@db:5432/fleetwatch \\
                  FLEETWATCH_DATABASE_PASSWORD_FILE=/run/secrets/fleetwatch-db-password monitor-hub database init
                """)
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let done = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.database"))
                .initializeDatabase()
            print("role \(done.role) owns database \(done.database); "
                  + (done.migrations.isEmpty ? "schema is up to date" : "applied migrations \(done.migrations.map(String.init).joined(separator: ", "))"))
        }
    }
}

extension HubConfiguration.LogFormat: ExpressibleByArgument {}
