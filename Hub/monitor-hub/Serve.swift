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
        let level = c.logLevel
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
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
