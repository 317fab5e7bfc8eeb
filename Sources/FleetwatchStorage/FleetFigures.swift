import Logging
import PostgresNIO

/// The fleet-wide figures of `/metrics`: firing alerts by level, unfinished commands by state, bots in
/// emergency mode. Each statement reads a partial index (`alerts_firing`, `commands_open`,
/// `bots_in_emergency`), never a whole table, so a scrape costs the same with a year of history.
public struct FleetFigures: Sendable, Equatable {
    public var firingAlerts: [String: Int64] = ["INFO": 0, "WARNING": 0, "CRITICAL": 0]
    public var openCommands: [String: Int64] = ["pending": 0, "delivered": 0, "acknowledged": 0]
    public var botsInEmergency: Int64 = 0

    public init() {}

    /// The statements, for plan checks (`EXPLAIN`) in tests.
    public static let statements = [
        "SELECT level, count(*) FROM alerts WHERE state = 'firing' GROUP BY level",
        "SELECT state, count(*) FROM commands WHERE state IN ('pending', 'delivered', 'acknowledged') GROUP BY state",
        "SELECT count(*) FROM bots WHERE emergency_command_id IS NOT NULL",
    ]

    /// Reads the figures now.
    public static func read(client: any PostgresQuerying, logger: Logger) async throws -> FleetFigures {
        var f = FleetFigures()
        for try await (level, n) in try await client.query(PostgresQuery(unsafeSQL: statements[0]), logger: logger)
            .decode((String, Int64).self) { f.firingAlerts[level] = n }
        for try await (state, n) in try await client.query(PostgresQuery(unsafeSQL: statements[1]), logger: logger)
            .decode((String, Int64).self) { f.openCommands[state] = n }
        for try await n in try await client.query(PostgresQuery(unsafeSQL: statements[2]), logger: logger).decode(Int64.self) {
            f.botsInEmergency = n
        }
        return f
    }
}
