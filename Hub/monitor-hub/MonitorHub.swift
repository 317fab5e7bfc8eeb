import ArgumentParser
import FleetwatchHub
import FleetwatchProtocol
import FleetwatchStorage
import Logging

/// `monitor-hub`: the fleetwatch hub and its operator commands.
@main
struct MonitorHub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor-hub",
        abstract: "The fleetwatch hub: ingest, storage and control for a fleet of trading bots.",
        version: FleetwatchVersion.current,
        subcommands: [Serve.self, Migrate.self, Database.self, Bots.self, Profiles.self, Tokens.self, Users.self, Report.self, Rollup.self, Analysts.self],
        defaultSubcommand: Serve.self)

    /// ArgumentParser's entry, after limiting the allocator's arenas on the main thread, before any other
    /// thread allocates (`MallocArenas`).
    static func main() async {
        MallocArenas.limit(MallocArenas.hubDefault)
        await main(nil)
    }
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(help: "production, development, or the path of a JSON configuration file.")
    var config: String?

    @Option(help: "PostgreSQL URL (postgres://user:password@host:port/db). Without it the hub runs a private cluster in --data-dir.")
    var databaseURL: String?

    @Option(help: "Directory of the embedded PostgreSQL cluster.")
    var dataDir: String?

    @Option(help: "How much the hub logs.")
    var logLevel: Logger.Level?

    /// The configuration from profile/file, environment, then these flags.
    func load() throws -> HubConfiguration {
        do {
            var c = try HubConfiguration.load(config: config)
            if let databaseURL { c.databaseURL = databaseURL }
            if let dataDir { c.dataDirectory = dataDir }
            if let logLevel { c.logLevel = logLevel }
            return c
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension AccessTokens.Role: ExpressibleByArgument {}
