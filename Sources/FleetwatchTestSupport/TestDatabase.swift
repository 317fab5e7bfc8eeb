import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

/// A fresh database on the test PostgreSQL server named by `FLEETWATCH_TEST_DATABASE_URL`
/// (`scripts/test` starts a private cluster and sets it). Each test gets its own database.
public struct TestDatabase: Sendable {
    public let url: DatabaseURL

    /// An existing database (for connecting as another role).
    public init(url: DatabaseURL) { self.url = url }

    /// The server's address, or nil when the variable is not set (tests that need it are skipped).
    public static var serverURL: DatabaseURL? {
        ProcessInfo.processInfo.environment["FLEETWATCH_TEST_DATABASE_URL"].flatMap { try? DatabaseURL($0) }
    }

    /// Creates `fw_test_<random>` on the test server.
    public static func create(logger: Logger = Logger(label: "test")) async throws -> TestDatabase {
        guard let url = serverURL else {
            throw TestSupportError("FLEETWATCH_TEST_DATABASE_URL is not set; run the suite with scripts/test")
        }
        return try await create(on: url, prefix: "fw_test_", logger: logger)
    }

    /// Creates `<prefix><random>` on `server`.
    public static func create(on server: DatabaseURL, prefix: String, logger: Logger) async throws -> TestDatabase {
        var url = server
        url.database = prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        try await DatabaseBootstrap.createDatabaseIfMissing(url, logger: logger)
        return TestDatabase(url: url)
    }

    /// Runs `body` with a running client on this database.
    public func withClient<T: Sendable>(logger: Logger = Logger(label: "test.db"), maxConnections: Int = 4,
                                        _ body: @Sendable @escaping (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(configuration: try url.clientConfiguration(maxConnections: maxConnections), backgroundLogger: logger)
        return try await withRunningClient(client, body)
    }
}

/// Where the package's built executables are (`FLEETWATCH_BIN_DIR`, default `.build/debug`).
public func builtExecutable(_ name: String) -> String {
    let dir = ProcessInfo.processInfo.environment["FLEETWATCH_BIN_DIR"]
        ?? FileManager.default.currentDirectoryPath + "/.build/debug"
    return dir + "/" + name
}

extension AsyncSequence where Self: Sendable {
    /// Every element, in order.
    public func all() async throws -> [Element] {
        var out: [Element] = []
        for try await e in self { out.append(e) }
        return out
    }
}
