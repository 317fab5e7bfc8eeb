import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO

/// Dashboard sign-in sessions. The browser holds a random secret in an HttpOnly cookie; the table holds
/// its SHA-256, the user, a CSRF token for state-changing requests, and the expiry. Any replica serves
/// any session.
public struct Sessions: Sendable {
    /// A signed-in user as seen by one request.
    public struct Session: Sendable, Equatable {
        public var id: Int64
        public var user: String
        public var role: AccessTokens.Role
        public var csrfToken: String
        public var expiresAt: Date
    }

    /// NOTIFY channel carrying the id of every ended session.
    public static let channel = "fleetwatch_sessions"

    let client: any PostgresQuerying
    let logger: Logger
    /// How long a session lives without use (sliding), and at most.
    public var idleTimeout: Duration
    public var maximumAge: Duration

    public init(client: any PostgresQuerying, logger: Logger, idleTimeout: Duration = .seconds(8 * 3600),
                maximumAge: Duration = .seconds(7 * 86_400)) {
        self.client = client
        self.logger = logger
        self.idleTimeout = idleTimeout
        self.maximumAge = maximumAge
    }

    /// Starts a session for a verified user; returns the cookie secret and the session.
    public func start(userID: Int, remote: String) async throws -> (secret: String, session: Session) {
        let secret = BotToken.generate(prefix: "fws_")
        let csrf = BotToken.generate(prefix: "")
        let idle = idleTimeout.inSeconds
        let rows = try await client.query("""
            WITH s AS (
                INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at, remote)
                VALUES (\(BotToken.hash(secret)), \(userID), \(csrf), now() + \(idle) * interval '1 second', \(remote))
                RETURNING id, user_id, expires_at),
            u AS (UPDATE users SET last_login_at = now() WHERE id = \(userID) RETURNING name, role)
            SELECT s.id, u.name, u.role, s.expires_at FROM s, u
            """, logger: logger)
        for try await (id, name, role, expires) in rows.decode((Int64, String, String, Date).self) {
            return (secret, Session(id: id, user: name, role: AccessTokens.Role(rawValue: role) ?? .viewer,
                                    csrfToken: csrf, expiresAt: expires))
        }
        throw UserAccounts.AccountError(description: "no user \(userID)")
    }

    /// The live session for a cookie secret (extending its idle expiry), nil if unknown, expired, revoked
    /// or its user is disabled.
    public func session(secret: String) async throws -> Session? {
        let idle = idleTimeout.inSeconds, maxAge = maximumAge.inSeconds
        let rows = try await client.query("""
            UPDATE sessions s SET last_seen_at = now(),
                   expires_at = LEAST(now() + \(idle) * interval '1 second', s.created_at + \(maxAge) * interval '1 second')
            FROM users u
            WHERE s.token_hash = \(BotToken.hash(secret)) AND s.revoked_at IS NULL AND s.expires_at > now()
              AND u.id = s.user_id AND u.disabled_at IS NULL
            RETURNING s.id, u.name, u.role, s.csrf_token, s.expires_at
            """, logger: logger)
        for try await (id, name, role, csrf, expires) in rows.decode((Int64, String, String, String, Date).self) {
            return Session(id: id, user: name, role: AccessTokens.Role(rawValue: role) ?? .viewer, csrfToken: csrf, expiresAt: expires)
        }
        return nil
    }

    /// Whether session `id` is still valid (no extension): the periodic check of open WebSockets.
    public func isActive(id: Int64) async throws -> Bool {
        let rows = try await client.query("""
            SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
            WHERE s.id = \(id) AND s.revoked_at IS NULL AND s.expires_at > now() AND u.disabled_at IS NULL
            """, logger: logger)
        for try await _ in rows.decode(Int.self) { return true }
        return false
    }

    /// Ends a session and tells every replica (its WebSockets close).
    public func end(id: Int64) async throws {
        try await client.query("""
            WITH s AS (UPDATE sessions SET revoked_at = now() WHERE id = \(id) AND revoked_at IS NULL RETURNING id)
            SELECT pg_notify(\(Self.channel), id::text) FROM s
            """, logger: logger)
    }
}
