import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

/// One connection made and closed to check a database address before a pool is built on it, so a wrong
/// address, password or TLS setting is a clear start-up error instead of a pool retrying for ever.
public enum DatabaseProbe {
    /// What one attempt found.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// Whether trying again later may succeed (server not up yet), as opposed to a setting to fix.
        public let retryable: Bool
        public init(description: String, retryable: Bool) {
            self.description = description
            self.retryable = retryable
        }
    }

    /// Connects to `endpoint` (the first by default), runs `SELECT pg_is_in_recovery()` and returns whether the
    /// server is a standby. Throws a `Failure` that says what to fix.
    @discardableResult
    public static func connectOnce(_ url: DatabaseURL, endpoint: DatabaseURL.Endpoint? = nil, logger: Logger) async throws -> Bool {
        let e = endpoint ?? url.endpoints[0]
        var config: PostgresConnection.Configuration
        do {
            config = try url.connectionConfiguration(endpoint: e)
        } catch let error as StorageError {
            throw Failure(description: error.description, retryable: false)
        } catch {
            throw Failure(description: "database URL: the TLS settings cannot be used: \(error)", retryable: false)
        }
        let timeout = Duration.seconds(url.connectTimeout.flatMap { $0 > 0 ? max($0, 2) : nil } ?? 10)
        config.options.connectTimeout = TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
        do {
            let connection = try await PostgresConnection.connect(configuration: config, id: 0, logger: logger)
            defer { Task { try? await connection.close() } }
            let rows = try await connection.query("SELECT pg_is_in_recovery()", logger: logger)
            for try await standby in rows.decode(Bool.self) { return standby }
            return false
        } catch {
            throw explain(error, url: url, endpoint: e)
        }
    }

    /// Tries `connectOnce` on each host until one answers and fits `target_session_attrs` (for prefer-standby, a
    /// standby if one answers), a setting is wrong, or `patience` has passed; logs each failure. Returns the index
    /// of that host in `url.endpoints`.
    @discardableResult
    public static func waitUntilReachable(_ url: DatabaseURL, patience: Duration, logger: Logger) async throws -> Int {
        let deadline = ContinuousClock.now + patience
        var delay = Duration.milliseconds(250)
        while true {
            var last: Failure?
            var fallback: Int?
            for (i, e) in url.endpoints.enumerated() {
                do {
                    let standby = try await connectOnce(url, endpoint: e, logger: logger)
                    if url.targetSessionAttrs == .preferStandby && !standby {
                        fallback = fallback ?? i
                        continue
                    }
                    if DatabaseHealth.acceptable(url.targetSessionAttrs, standby: standby) { return i }
                    last = Failure(description: "\(e.display) is \(standby ? "a standby (read-only)" : "a primary"), and the address asks for target_session_attrs=\(url.targetSessionAttrs.rawValue)",
                                   retryable: true)
                } catch let f as Failure {
                    if !f.retryable { throw StorageError("cannot use PostgreSQL: \(f.description)") }
                    last = f
                }
            }
            if let fallback { return fallback }
            guard ContinuousClock.now + delay < deadline, let last else {
                throw StorageError("cannot reach PostgreSQL within \(patience.components.seconds) s: \(last?.description ?? "no answer"). "
                                   + "Check that it runs and the address (\(url.description)) is right.")
            }
            logger.warning("waiting for PostgreSQL: \(last.description)")
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// A sentence for an operator: what failed, and what to change. Never the password.
    public static func explain(_ error: any Error, url: DatabaseURL, endpoint e: DatabaseURL.Endpoint) -> Failure {
        let at = e.isSocket ? "the socket in \(e.host)" : e.display
        guard let p = error as? PSQLError else {
            return Failure(description: "cannot connect to \(at): \(error)", retryable: true)
        }
        switch p.code {
        case .sslUnsupported:
            return Failure(description: "the server at \(at) does not offer TLS, and sslmode=\(url.sslMode.rawValue) requires it: "
                           + "turn ssl on in the server, or use sslmode=prefer (encrypt if offered) or disable", retryable: false)
        case .server:
            let state = p.serverInfo?[.sqlState] ?? ""
            let message = p.serverInfo?[.message] ?? "refused"
            switch state {
            case "28P01":
                return Failure(description: "\(at) refused the password of user \(url.username) (check the URL's password, PGPASSWORD or ~/.pgpass)",
                               retryable: false)
            case "28000":
                let hint = message.contains("no encryption") ? " (the server wants TLS for this client: use sslmode=require or verify-full)" : ""
                return Failure(description: "\(at) refused user \(url.username): \(message)\(hint)", retryable: false)
            case "3D000":
                return Failure(description: "\(at) has no database \(url.database): create it, or fix the URL's database name", retryable: false)
            case "57P03":
                return Failure(description: "\(at) is starting up or shutting down: \(message)", retryable: true)
            case "53300":
                return Failure(description: "\(at) has no connection slots left: \(message)", retryable: true)
            default:
                return Failure(description: "\(at) refused the connection: \(message) (SQLSTATE \(state))", retryable: false)
            }
        default:
            let cause = p.underlying.map(describe) ?? String(describing: p.code)
            if let ssl = p.underlying, ssl is NIOSSLError || ssl is NIOSSLExtraError || ssl is BoringSSLError {
                return Failure(description: "TLS with \(at) failed: \(ssl) — with sslmode=\(url.sslMode.rawValue) the server's certificate "
                               + "must be signed by sslrootcert\(url.sslMode == .verifyFull ? " and issued for the host name \(e.host)" : "")",
                               retryable: false)
            }
            return Failure(description: "cannot connect to \(at): \(cause)", retryable: true)
        }
    }

    private static func describe(_ error: any Error) -> String {
        if let io = error as? IOError { return io.description }
        if let c = error as? NIOConnectionError {
            return c.connectionErrors.first.map { "\($0.error)" } ?? "connection failed"
        }
        return String(describing: error)
    }
}
