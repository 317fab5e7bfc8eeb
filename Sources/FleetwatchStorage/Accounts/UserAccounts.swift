import Foundation
import Logging
import PostgresNIO

/// Dashboard users: a name, a role and a password hash (`PasswordHash`).
public struct UserAccounts: Sendable {
    public struct Listing: Sendable, Codable, Equatable {
        public var name: String
        public var role: String
        public var createdAt: Date
        public var lastLoginAt: Date?
        public var disabledAt: Date?
    }

    public struct AccountError: Error, CustomStringConvertible {
        public let description: String
    }

    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Whether `name` has started a session from `address` (an IP address, no port) in the last `days` days.
    public func hasSignedIn(name: String, fromAddress address: String, days: Int = 30) async throws -> Bool {
        let rows = try await client.query("""
            SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
            WHERE lower(u.name) = lower(\(name)) AND s.created_at > now() - \(days) * interval '1 day'
              AND (s.remote = \(address) OR left(s.remote, length(\(address)) + 1) = \(address) || ':')
            LIMIT 1
            """, logger: logger)
        for try await _ in rows.decode(Int.self) { return true }
        return false
    }

    /// Creates a user; fails with a clear message if the name is taken or malformed, or the password too short.
    public func add(name: String, role: AccessTokens.Role, password: String) async throws {
        try Self.check(name: name, password: password)
        let hash = try PasswordHash.make(password)
        let rows = try await client.query("""
            INSERT INTO users (name, role, password_hash) VALUES (\(name), \(role.rawValue), \(hash))
            ON CONFLICT (name) DO NOTHING RETURNING id
            """, logger: logger)
        guard try await rows.decode(Int.self).first(where: { _ in true }) != nil else {
            throw AccountError(description: "a user named \(name) exists; use `monitor-hub users passwd \(name)` to change the password")
        }
    }

    /// Creates `name` as an operator with `password` only if there is no user at all (the first start);
    /// returns whether it did. Safe when several replicas start at once.
    public func createFirstAdmin(name: String, password: String) async throws -> Bool {
        try Self.check(name: name, password: password)
        let hash = try PasswordHash.make(password)
        let rows = try await client.query("""
            WITH lock AS (SELECT pg_advisory_xact_lock(7243001))
            INSERT INTO users (name, role, password_hash)
            SELECT \(name), 'operator', \(hash) FROM lock WHERE NOT EXISTS (SELECT 1 FROM users)
            ON CONFLICT (name) DO NOTHING RETURNING id
            """, logger: logger)
        return try await rows.decode(Int.self).first(where: { _ in true }) != nil
    }

    /// Sets a new password and signs the user out everywhere; returns whether the user exists.
    public func setPassword(name: String, password: String) async throws -> Bool {
        try Self.check(name: name, password: password)
        let hash = try PasswordHash.make(password)
        let rows = try await client.query("""
            WITH u AS (UPDATE users SET password_hash = \(hash) WHERE name = \(name) RETURNING id),
                 s AS (UPDATE sessions SET revoked_at = now() WHERE user_id IN (SELECT id FROM u) AND revoked_at IS NULL
                       RETURNING id, pg_notify('fleetwatch_sessions', id::text))
            SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM s)
            """, logger: logger)
        for try await (users, _) in rows.decode((Int64, Int64).self) { return users > 0 }
        return false
    }

    /// Disables a user and ends their sessions; returns whether an active user was disabled.
    public func disable(name: String) async throws -> Bool {
        let rows = try await client.query("""
            WITH u AS (UPDATE users SET disabled_at = now() WHERE name = \(name) AND disabled_at IS NULL RETURNING id),
                 s AS (UPDATE sessions SET revoked_at = now() WHERE user_id IN (SELECT id FROM u) AND revoked_at IS NULL
                       RETURNING id, pg_notify('fleetwatch_sessions', id::text))
            SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM s)
            """, logger: logger)
        for try await (users, _) in rows.decode((Int64, Int64).self) { return users > 0 }
        return false
    }

    /// The user's id and role if `password` is right and the account is active. Runs the hash even for an
    /// unknown name, so response time does not tell which names exist.
    public func verify(name: String, password: String) async throws -> (id: Int, role: AccessTokens.Role)? {
        let row = try await client.query("""
            SELECT id, role, password_hash FROM users WHERE name = \(name) AND disabled_at IS NULL
            """, logger: logger).decode((Int, String, String).self).first { _ in true }
        guard let (id, role, hash) = row else {
            _ = PasswordHash.verify(password, against: Self.decoyHash)
            return nil
        }
        guard PasswordHash.verify(password, against: hash), let r = AccessTokens.Role(rawValue: role) else { return nil }
        return (id, r)
    }

    public func list() async throws -> [Listing] {
        let rows = try await client.query("""
            SELECT name, role, created_at, last_login_at, disabled_at FROM users ORDER BY name
            """, logger: logger)
        var out: [Listing] = []
        for try await (name, role, created, login, disabled) in rows.decode((String, String, Date, Date?, Date?).self) {
            out.append(Listing(name: name, role: role, createdAt: created, lastLoginAt: login, disabledAt: disabled))
        }
        return out
    }

    static func check(name: String, password: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-")
        guard (1...64).contains(name.count), name.allSatisfy(allowed.contains) else {
            throw AccountError(description: "user names are 1–64 characters of A–Z a–z 0–9 _ . @ -")
        }
        guard password.count >= 12 else {
            throw AccountError(description: "passwords need at least 12 characters")
        }
    }

    /// A valid hash of nothing anybody knows, verified for unknown names to keep timing uniform.
    static let decoyHash = (try? PasswordHash.make(PasswordHash.generatePassword())) ?? ""
}
