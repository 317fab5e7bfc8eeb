import Foundation
import PostgresNIO

/// A PostgreSQL address as libpq reads it: `postgres://USER:PASSWORD@HOST:PORT[,HOST2:PORT2…]/DATABASE?PARAMS`,
/// with the standard `PG*` environment variables (and `~/.pgpass`) filling what the URL leaves out.
///
/// Parameters: `sslmode` (`disable`, `allow`, `prefer` — the default —, `require`, `verify-ca`, `verify-full`),
/// `sslrootcert` (a CA file, or `system`), `sslcert`, `sslkey`, `connect_timeout`, `application_name`,
/// `target_session_attrs`, and `host`, `port`, `user`, `password`, `dbname` as in libpq. Anything else is an error
/// that names it. See docs/configuration.md ("The database address").
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    /// One server of the address.
    public struct Endpoint: Sendable, Equatable {
        /// A host name, an IP address, or a directory holding the server's Unix socket (starts with `/`).
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        /// Whether this endpoint is a Unix-domain socket directory.
        public var isSocket: Bool { host.hasPrefix("/") }
        /// `host:port`, IPv6 addresses bracketed.
        public var display: String { (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }
    }

    public var endpoints: [Endpoint]
    public var username: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    /// `sslrootcert`: a PEM file of trusted CAs, or `system` for the system's trust store.
    public var sslRootCert: String?
    /// `sslcert` and `sslkey`: a client certificate (PEM) and its private key (PEM, mode 0600 or stricter).
    public var sslCert: String?
    public var sslKey: String?
    /// Seconds to wait for each connection attempt (`connect_timeout`; 0 or absent: 10 s).
    public var connectTimeout: Int?
    public var applicationName: String?
    /// Which server of several to use (`target_session_attrs`).
    public var targetSessionAttrs: TargetSessionAttrs

    /// libpq's `sslmode`.
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// libpq's `target_session_attrs`.
    public enum TargetSessionAttrs: String, Sendable, CaseIterable {
        case any
        case readWrite = "read-write"
        case readOnly = "read-only"
        case primary
        case standby
        case preferStandby = "prefer-standby"
    }

    /// The first server (most addresses have one).
    public var host: String {
        get { endpoints[0].host }
        set { endpoints[0].host = newValue }
    }
    public var port: Int {
        get { endpoints[0].port }
        set { endpoints[0].port = newValue }
    }

    public init(host: String, port: Int, username: String, password: String?, database: String,
                sslMode: SSLMode = .disable) {
        endpoints = [Endpoint(host: host, port: port)]
        self.username = username
        self.password = password
        self.database = database
        self.sslMode = sslMode
        targetSessionAttrs = .any
    }

    /// Parses a `postgres://` or `postgresql://` URL, taking what it leaves out from `environment` the way libpq
    /// does (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGPASSFILE`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`,
    /// `PGSSLCERT`, `PGSSLKEY`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`, `PGTARGETSESSIONATTRS`) and the password from
    /// `~/.pgpass`. Throws a message that says what is wrong, never the password.
    public init(_ string: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                home: String? = nil) throws {
        let redacted = Self.redact(string)
        func fail(_ why: String) -> StorageError {
            StorageError("database URL '\(redacted)': \(why)")
        }
        let scheme: String
        if string.hasPrefix("postgresql://") { scheme = "postgresql://" } else if string.hasPrefix("postgres://") { scheme = "postgres://" } else {
            throw fail("expected postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        var rest = Substring(string.dropFirst(scheme.count))
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var userInfo: Substring?
        if let at = rest.lastIndex(of: "@") {
            userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        var params: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, let key = Self.decode(kv[0]), let value = Self.decode(kv[1]) else {
                throw fail("parameter '\(pair.prefix(40))' is not KEY=VALUE")
            }
            guard Self.knownParameters.contains(key) else {
                throw fail("unknown parameter '\(key.prefix(40))' (known: \(Self.knownParameters.sorted().joined(separator: ", ")))")
            }
            params[key] = value
        }
        func setting(_ key: String, _ variable: String) -> String? {
            if let v = params[key], !v.isEmpty { return v }
            if let v = environment[variable], !v.isEmpty { return v }
            return nil
        }

        // Servers: the URL's host list, else `host`/PGHOST (comma lists), with ports from the URL, `port`/PGPORT or 5432.
        var hosts: [(String, Int?)] = []
        if !rest.isEmpty {
            for spec in rest.split(separator: ",", omittingEmptySubsequences: false) {
                hosts.append(try Self.hostSpec(spec, fail: fail))
            }
        } else if let list = setting("host", "PGHOST") {
            hosts = list.split(separator: ",", omittingEmptySubsequences: false).map { (String($0), nil) }
        }
        if hosts.isEmpty { hosts = [("localhost", nil)] }
        let portList = setting("port", "PGPORT").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) } ?? []
        guard portList.count <= 1 || portList.count == hosts.count else {
            throw fail("\(portList.count) ports for \(hosts.count) hosts: give one port, or one per host")
        }
        endpoints = try hosts.enumerated().map { i, h in
            guard !h.0.isEmpty else { throw fail("an empty host name in the host list") }
            let text = portList.isEmpty ? nil : portList[portList.count == 1 ? 0 : i]
            let port: Int
            if let p = h.1 { port = p } else if let text {
                guard let p = Int(text), (1...65535).contains(p) else { throw fail("port '\(text.prefix(20))' is not 1–65535") }
                port = p
            } else { port = 5432 }
            return Endpoint(host: h.0, port: port)
        }

        var user: String?
        var pass: String?
        if let userInfo {
            let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            user = Self.decode(parts[0]).flatMap { $0.isEmpty ? nil : $0 }
            if parts.count == 2 { pass = Self.decode(parts[1]) }
        }
        username = user ?? setting("user", "PGUSER") ?? Self.systemUserName()
        let dbPath = Self.decode(path) ?? ""
        database = dbPath.isEmpty ? (setting("dbname", "PGDATABASE") ?? username) : dbPath
        password = pass ?? setting("password", "PGPASSWORD")

        let modeText = setting("sslmode", "PGSSLMODE") ?? "prefer"
        guard let mode = SSLMode(rawValue: modeText) else {
            throw fail("sslmode '\(modeText.prefix(40))' is not one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        sslMode = mode
        let home = home ?? environment["HOME"] ?? NSHomeDirectory()
        func defaultFile(_ name: String) -> String? {
            let path = home + "/.postgresql/" + name
            return FileManager.default.fileExists(atPath: path) ? path : nil
        }
        sslRootCert = setting("sslrootcert", "PGSSLROOTCERT") ?? defaultFile("root.crt")
        sslCert = setting("sslcert", "PGSSLCERT") ?? defaultFile("postgresql.crt")
        sslKey = setting("sslkey", "PGSSLKEY") ?? defaultFile("postgresql.key")
        if let t = setting("connect_timeout", "PGCONNECT_TIMEOUT") {
            guard let seconds = Int(t), seconds >= 0 else { throw fail("connect_timeout '\(t.prefix(20))' is not a whole number of seconds") }
            connectTimeout = seconds
        }
        applicationName = setting("application_name", "PGAPPNAME")
        let attrs = setting("target_session_attrs", "PGTARGETSESSIONATTRS") ?? "any"
        guard let a = TargetSessionAttrs(rawValue: attrs) else {
            throw fail("target_session_attrs '\(attrs.prefix(40))' is not one of \(TargetSessionAttrs.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        targetSessionAttrs = a
        if mode == .disable || mode == .allow || mode == .prefer, params["sslrootcert"] == "system" {
            throw fail("sslrootcert=system needs sslmode=verify-full (libpq refuses weaker modes with the system's CAs)")
        }
        if sslRootCert == "system", mode != .verifyFull {
            throw fail("sslrootcert=system needs sslmode=verify-full (libpq refuses weaker modes with the system's CAs)")
        }
        if password == nil {
            let file = environment["PGPASSFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.pgpass"
            password = PassFile.lookup(file, endpoint: endpoints[0], database: database, user: username)
        }
    }

    static let knownParameters: Set<String> = [
        "host", "port", "user", "password", "dbname", "sslmode", "sslrootcert", "sslcert", "sslkey",
        "connect_timeout", "application_name", "target_session_attrs",
    ]

    private static func hostSpec(_ spec: Substring, fail: (String) -> StorageError) throws -> (String, Int?) {
        var host: Substring
        var portText: Substring?
        if spec.hasPrefix("[") {
            guard let close = spec.firstIndex(of: "]") else { throw fail("an IPv6 address without its closing ]") }
            host = spec[spec.index(after: spec.startIndex)..<close]
            let after = spec[spec.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw fail("garbage after an IPv6 address") }
        } else if let colon = spec.lastIndex(of: ":") {
            host = spec[..<colon]
            portText = spec[spec.index(after: colon)...]
        } else {
            host = spec
        }
        guard let name = decode(host) else { throw fail("a host name with a bad %-escape") }
        guard let portText, !portText.isEmpty else { return (name, nil) }
        guard let port = Int(portText), (1...65535).contains(port) else { throw fail("port '\(portText.prefix(20))' is not 1–65535") }
        return (name, port)
    }

    private static func decode(_ s: Substring) -> String? {
        String(s).removingPercentEncoding
    }

    static func systemUserName() -> String {
        if let pw = getpwuid(geteuid()), let name = pw.pointee.pw_name { return String(cString: name) }
        return "postgres"
    }

    /// The address with the password hidden, for logs and errors.
    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(endpoints.map(\.display).joined(separator: ","))/\(database)"
            + (sslMode == .prefer ? "" : "?sslmode=\(sslMode.rawValue)")
    }

    /// The full address, password and parameters included (for a child process, which reads it back the same way).
    public var urlString: String {
        func enc(_ s: String, _ set: CharacterSet) -> String { s.addingPercentEncoding(withAllowedCharacters: set) ?? s }
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+")
        let user = enc(username, .urlUserAllowed)
        let pass = password.map { ":" + enc($0, .urlPasswordAllowed) } ?? ""
        let hosts = endpoints.map { e -> String in
            e.isSocket ? "" : (e.host.contains(":") ? "[\(e.host)]" : enc(e.host, .urlHostAllowed)) + ":\(e.port)"
        }
        var params: [(String, String)] = [("sslmode", sslMode.rawValue)]
        if endpoints.contains(where: \.isSocket) {
            params.append(("host", endpoints.map(\.host).joined(separator: ",")))
            params.append(("port", endpoints.map { String($0.port) }.joined(separator: ",")))
        }
        if let sslRootCert { params.append(("sslrootcert", sslRootCert)) }
        if let sslCert { params.append(("sslcert", sslCert)) }
        if let sslKey { params.append(("sslkey", sslKey)) }
        if let connectTimeout { params.append(("connect_timeout", String(connectTimeout))) }
        if let applicationName { params.append(("application_name", applicationName)) }
        if targetSessionAttrs != .any { params.append(("target_session_attrs", targetSessionAttrs.rawValue)) }
        let hostPart = endpoints.contains(where: \.isSocket) ? "" : hosts.joined(separator: ",")
        return "postgres://\(user)\(pass)@\(hostPart)/\(enc(database, .urlPathAllowed))?"
            + params.map { "\($0.0)=\(enc($0.1, allowed))" }.joined(separator: "&")
    }

    static func redact(_ s: String) -> String {
        var out = s.replacingOccurrences(of: #":[^:@/]+@"#, with: ":***@", options: .regularExpression)
        out = out.replacingOccurrences(of: #"password=[^&]*"#, with: "password=***", options: .regularExpression)
        return out
    }

    /// A client configuration for `endpoint` (the first server by default) with `maxConnections` pooled
    /// connections. Throws when the TLS files cannot be used.
    /// One connection to `endpoint` (a host of this address), with the address's TLS settings; for probes.
    public func connectionConfiguration(endpoint e: Endpoint) throws -> PostgresConnection.Configuration {
        if e.isSocket {
            return .init(unixSocketPath: "\(e.host)/.s.PGSQL.\(e.port)", username: username, password: password, database: database)
        }
        return .init(host: e.host, port: e.port, username: username, password: password, database: database,
                     tls: try DatabaseTLS.choice(self).connection)
    }

    public func clientConfiguration(maxConnections: Int = 16, endpoint: Endpoint? = nil) throws -> PostgresClient.Configuration {
        let e = endpoint ?? endpoints[0]
        var config: PostgresClient.Configuration
        if e.isSocket {
            config = PostgresClient.Configuration(unixSocketPath: "\(e.host)/.s.PGSQL.\(e.port)", username: username,
                                                  password: password, database: database)
        } else {
            config = PostgresClient.Configuration(host: e.host, port: e.port, username: username, password: password,
                                                  database: database, tls: try DatabaseTLS.choice(self).client)
        }
        config.options.maximumConnections = maxConnections
        config.options.connectTimeout = .seconds(connectTimeout.flatMap { $0 > 0 ? max($0, 2) : nil } ?? 10)
        if let applicationName { config.options.additionalStartupParameters.append(("application_name", applicationName)) }
        return config
    }
}

/// A storage failure with a message for the operator.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
