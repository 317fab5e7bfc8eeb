import Foundation
import PostgresNIO

/// A `postgres://user:password@host:port/database` address turned into a client configuration.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// `require` turns TLS on; anything else (the default) connects without TLS.
    public var sslMode: String

    public init(host: String, port: Int, username: String, password: String?, database: String, sslMode: String = "disable") {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.sslMode = sslMode
    }

    /// Parses `postgres://` or `postgresql://` URLs; throws a message that says what is wrong.
    public init(_ string: String) throws {
        guard let c = URLComponents(string: string), c.scheme == "postgres" || c.scheme == "postgresql",
              let host = c.host, !host.isEmpty
        else {
            throw StorageError("'\(DatabaseURL.redact(string))' is not a database URL; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        self.host = host
        self.port = c.port ?? 5432
        self.username = c.user?.removingPercentEncoding ?? "postgres"
        self.password = c.password?.removingPercentEncoding
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        self.database = path.isEmpty ? self.username : path
        self.sslMode = c.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
    }

    /// The address with the password hidden, for logs.
    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }

    /// The full address, password included.
    public var urlString: String {
        let user = username.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) ?? username
        let pass = password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: .urlPasswordAllowed) ?? $0) } ?? ""
        return "postgres://\(user)\(pass)@\(host):\(port)/\(database)"
    }

    static func redact(_ s: String) -> String {
        s.replacingOccurrences(of: #":[^:@/]+@"#, with: ":***@", options: .regularExpression)
    }

    /// A client configuration with `maxConnections` pooled connections.
    public func clientConfiguration(maxConnections: Int = 16) -> PostgresClient.Configuration {
        var config = PostgresClient.Configuration(host: host, port: port, username: username, password: password,
                                                  database: database,
                                                  tls: sslMode == "require" ? .require(.makeClientConfiguration()) : .disable)
        config.options.maximumConnections = maxConnections
        config.options.connectTimeout = .seconds(5)
        return config
    }
}

/// A storage failure with a message for the operator.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
