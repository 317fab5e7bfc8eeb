import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

/// Whether the test PostgreSQL is configured (`scripts/test` provides it; its suites are skipped without it).
public let hasDatabase = TestDatabase.serverURL != nil

/// API tokens every test database gets from `registerBots`.
public let operatorToken = "fwo_test-operator-token"
public let viewerToken = "fwv_test-viewer-token"

/// Registers bots with known tokens directly in the database, and the test operator and viewer API tokens.
public func registerBots(_ names: [String], token: String, in db: TestDatabase) async throws {
    try await db.withClient { client in
        try await Migrator(client: client, logger: Logger(label: "test")).migrate()
        try await client.query("""
            INSERT INTO api_tokens (name, role, token_hash) VALUES ('test-operator', 'operator', \(BotToken.hash(operatorToken))),
                ('test-viewer', 'viewer', \(BotToken.hash(viewerToken))) ON CONFLICT DO NOTHING
            """, logger: Logger(label: "test"))
        for name in names {
            let hash = BotToken.hash(token)
            try await client.query("INSERT INTO bots (name, token_hash) VALUES (\(name), \(hash))", logger: Logger(label: "test"))
        }
    }
}

