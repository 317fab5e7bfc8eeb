import Logging
import PostgresNIO

/// Creates the hub's database on a server if it does not exist (used with the embedded cluster).
public enum DatabaseBootstrap {
    public static func createDatabaseIfMissing(_ url: DatabaseURL, logger: Logger) async throws {
        var admin = url
        admin.database = "postgres"
        let client = PostgresClient(configuration: try admin.clientConfiguration(maxConnections: 1), backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let exists = try await client.query("SELECT 1 FROM pg_database WHERE datname = \(url.database)", logger: logger)
                .decode(Int.self).first { _ in true } != nil
            if !exists {
                guard url.database.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw StorageError("database name '\(url.database)' must be letters, digits and _")
                }
                try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(url.database)"), logger: logger)
                logger.info("created database \(url.database)")
            }
        }
    }
}
