import Foundation
import Logging
import PostgresNIO

/// API tokens (`Authorization: Bearer …`): a name, a role, and the SHA-256 of a random secret shown once.
public struct AccessTokens: Sendable {
    public enum Role: String, Sendable, Codable, CaseIterable {
        /// Reads everything.
        case viewer
        /// Also stops and resumes bots, acknowledges and silences alerts, changes thresholds.
        case `operator`
    }

    /// Who a valid token belongs to.
    public struct Principal: Sendable, Equatable {
        public var name: String
        public var role: Role
        public init(name: String, role: Role) {
            self.name = name
            self.role = role
        }
    }

    public struct Listing: Sendable, Codable, Equatable {
        public var name: String
        public var role: String
        public var createdAt: Date
        public var lastUsedAt: Date?
        public var revokedAt: Date?
    }

    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The holder of `token`, nil if it is unknown or revoked.
    public func principal(token: String) async throws -> Principal? {
        let hash = BotToken.hash(token)
        let row = try await client.query("""
            UPDATE api_tokens SET last_used_at = now()
            WHERE token_hash = \(hash) AND revoked_at IS NULL
            RETURNING name, role
            """, logger: logger).decode((String, String).self).first { _ in true }
        guard let (name, role) = row, let r = Role(rawValue: role) else { return nil }
        return Principal(name: name, role: r)
    }

    /// Whether the token with SHA-256 `hash` is still valid (the periodic check of open WebSockets).
    public func isActive(hash: ByteBuffer) async throws -> Bool {
        let rows = try await client.query("""
            SELECT 1 FROM api_tokens WHERE token_hash = \(hash) AND revoked_at IS NULL
            """, logger: logger)
        for try await _ in rows.decode(Int.self) { return true }
        return false
    }

    /// Creates a token for `name`; returns the secret (shown once). Fails if the name is taken.
    public func add(name: String, role: Role) async throws -> String {
        let token = BotToken.generate(prefix: role == .operator ? "fwo_" : "fwv_")
        try await client.query("""
            INSERT INTO api_tokens (name, role, token_hash) VALUES (\(name), \(role.rawValue), \(BotToken.hash(token)))
            """, logger: logger)
        return token
    }

    /// Revokes `name`'s token; returns whether one was active.
    public func revoke(name: String) async throws -> Bool {
        let rows = try await client.query("""
            UPDATE api_tokens SET revoked_at = now() WHERE name = \(name) AND revoked_at IS NULL RETURNING 1
            """, logger: logger)
        for try await _ in rows.decode(Int.self) { return true }
        return false
    }

    public func list() async throws -> [Listing] {
        let rows = try await client.query("""
            SELECT name, role, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY name
            """, logger: logger)
        var out: [Listing] = []
        for try await (name, role, created, used, revoked) in rows.decode((String, String, Date, Date?, Date?).self) {
            out.append(Listing(name: name, role: role, createdAt: created, lastUsedAt: used, revokedAt: revoked))
        }
        return out
    }
}
