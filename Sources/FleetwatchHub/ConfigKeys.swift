import FleetwatchAlerting
import Foundation

/// Every key of the JSON configuration file, written once: its dotted path, what it holds and where it goes.
/// The file is checked against this table (an unknown section or key is an error naming it) and applied in the
/// table's order, whatever the order in the file.
struct ConfigKey: Sendable {
    let path: String
    let apply: @Sendable (inout HubConfiguration, JSONValue, _ source: String) throws -> Void

    /// A value stored as it is.
    static func set<T: ConfigScalar>(_ path: String, _ target: WritableKeyPath<HubConfiguration, T> & Sendable) -> ConfigKey {
        ConfigKey(path: path) { c, v, source in c[keyPath: target] = try T.read(v, path, source: source) }
    }

    /// A value stored as it is in an optional setting.
    static func set<T: ConfigScalar>(_ path: String, _ target: WritableKeyPath<HubConfiguration, T?> & Sendable) -> ConfigKey {
        ConfigKey(path: path) { c, v, source in c[keyPath: target] = try T.read(v, path, source: source) }
    }

    /// A number of seconds, kept as a duration.
    static func duration(_ path: String, _ target: WritableKeyPath<HubConfiguration, Duration> & Sendable) -> ConfigKey {
        ConfigKey(path: path) { c, v, source in
            c[keyPath: target] = .milliseconds(try HubConfiguration.fileMilliseconds(Double.read(v, path, source: source), path, source: source))
        }
    }

    /// A number of seconds, kept as whole milliseconds.
    static func milliseconds(_ path: String, _ target: WritableKeyPath<HubConfiguration, Int64> & Sendable) -> ConfigKey {
        ConfigKey(path: path) { c, v, source in
            c[keyPath: target] = try HubConfiguration.fileMilliseconds(Double.read(v, path, source: source), path, source: source)
        }
    }

    /// A number of seconds kept as seconds, range-checked as the hub uses it in milliseconds.
    static func seconds(_ path: String, _ target: WritableKeyPath<HubConfiguration, Double> & Sendable) -> ConfigKey {
        ConfigKey(path: path) { c, v, source in
            let seconds = try Double.read(v, path, source: source)
            _ = try HubConfiguration.fileMilliseconds(seconds, path, source: source)
            c[keyPath: target] = seconds
        }
    }

    /// A string where empty means "not set".
    static func optionalString(_ path: String, _ target: WritableKeyPath<HubConfiguration, String?> & Sendable) -> ConfigKey {
        ConfigKey(path: path) { c, v, source in
            let s = try String.read(v, path, source: source)
            c[keyPath: target] = s.isEmpty ? nil : s
        }
    }

    /// Anything else: `body` reads the value itself.
    static func custom(_ path: String, _ body: @escaping @Sendable (inout HubConfiguration, JSONValue, String) throws -> Void) -> ConfigKey {
        ConfigKey(path: path, apply: body)
    }
}

/// A value of the file that a setting stores as it is.
protocol ConfigScalar: Sendable {
    static var expected: String { get }
    static func from(_ value: JSONValue) -> Self?
}

extension ConfigScalar {
    static func read(_ value: JSONValue, _ path: String, source: String) throws -> Self {
        guard let v = from(value) else { throw ConfigurationError("\(source): \(path) must be \(expected)") }
        return v
    }
}

extension Int: ConfigScalar {
    static var expected: String { "a whole number" }
    static func from(_ value: JSONValue) -> Int? {
        switch value {
        case .integer(let i): return i
        case .number(let d): return Int(exactly: d)
        default: return nil
        }
    }
}

extension Double: ConfigScalar {
    static var expected: String { "a number" }
    static func from(_ value: JSONValue) -> Double? {
        switch value {
        case .integer(let i): return Double(i)
        case .number(let d): return d
        default: return nil
        }
    }
}

extension Bool: ConfigScalar {
    static var expected: String { "true or false" }
    static func from(_ value: JSONValue) -> Bool? { if case .bool(let b) = value { b } else { nil } }
}

extension String: ConfigScalar {
    static var expected: String { "a string" }
    static func from(_ value: JSONValue) -> String? { if case .string(let s) = value { s } else { nil } }
}

extension Array: ConfigScalar where Element == String {
    static var expected: String { "a list of strings" }
    static func from(_ value: JSONValue) -> [String]? {
        guard case .array(let items) = value else { return nil }
        let strings = items.compactMap(String.from)
        return strings.count == items.count ? strings : nil
    }
}

/// Any JSON value, as the configuration file holds it.
enum JSONValue: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }
}

extension HubConfiguration {
    /// The file's keys, in the order they are applied.
    static let configKeys: [ConfigKey] = [
        .seconds("monitoring.health_check_interval", \.monitoring.healthCheckInterval),
        .custom("monitoring.profile") { c, v, source in
            let name = try String.read(v, "monitoring.profile", source: source)
            guard let base = ThresholdProfile.builtIn[name] else {
                throw ConfigurationError("\(source): monitoring.profile must be default, production or development")
            }
            c.baseProfile = name
            // The built-in profile's own setting, unless the file says otherwise (the next key, applied after).
            c.monitoring.enableEmergencyShutdown = base.enableEmergencyShutdown
        },
        .set("monitoring.enable_emergency_shutdown", \.monitoring.enableEmergencyShutdown),

        .set("dashboard.enabled", \.dashboardEnabled),
        .set("dashboard.port", \.port),
        .set("dashboard.admin_user", \.dashboard.adminUser),
        .set("dashboard.admin_password", \.dashboard.adminPassword),
        .set("dashboard.admin_password_file", \.dashboard.adminPasswordFile),
        .set("dashboard.allowed_origins", \.dashboard.allowedOrigins),
        .duration("dashboard.session_idle_timeout", \.dashboard.sessionIdleTimeout),
        .set("dashboard.login_attempts_per_minute", \.dashboard.loginAttemptsPerMinute),
        .set("dashboard.chartjs_path", \.dashboard.chartJSPath),
        .duration("dashboard.update_interval", \.dashboard.updateInterval),
        .duration("dashboard.ping_interval", \.dashboard.pingInterval),
        .duration("dashboard.session_check_interval", \.dashboard.sessionCheckInterval),

        .set("hub.host", \.host),
        .set("hub.port", \.port),
        .set("hub.database_url", \.databaseURL),
        .set("hub.read_database_url", \.readDatabaseURL),
        .optionalString("hub.public_url", \.publicURL),
        .custom("hub.metrics_auth") { c, v, source in
            guard let a = MetricsAuth(rawValue: try String.read(v, "hub.metrics_auth", source: source)) else {
                throw ConfigurationError("\(source): hub.metrics_auth must be none or token")
            }
            c.metricsAuth = a
        },
        .duration("hub.database_start_timeout", \.databaseStartTimeout),
        .set("hub.data_dir", \.dataDirectory),
        .set("hub.auto_register", \.autoRegister),
        .set("hub.id", \.ingest.hubID),
        .custom("hub.log_level") { c, v, source in
            c.logLevel = try HubConfiguration.level(String.read(v, "hub.log_level", source: source), from: "\(source): hub.log_level")
        },
        .custom("hub.log_format") { c, v, source in
            c.logFormat = try HubConfiguration.logFormat(String.read(v, "hub.log_format", source: source), from: "\(source): hub.log_format")
        },
        .set("hub.tls_certificate", \.tlsCertificatePath),
        .set("hub.tls_key", \.tlsKeyPath),
        .set("hub.max_frame_bytes", \.ingest.maxFrameBytes),
        .set("hub.max_payload_bytes", \.ingest.limits.maxPayloadBytes),
        .set("hub.max_samples_per_batch", \.ingest.limits.maxSamples),
        .duration("hub.heartbeat_interval", \.ingest.heartbeatInterval),
        .milliseconds("hub.max_sample_age", \.ingest.validator.maxAgeMs),
        .milliseconds("hub.max_sample_future", \.ingest.validator.maxFutureMs),
        .set("hub.max_metric_names_per_bot", \.ingest.maxMetricNamesPerBot),
        .set("hub.max_metric_names", \.ingest.maxMetricNames),
        .set("hub.max_pending_bytes", \.ingest.maxPendingBytes),
        .set("hub.max_pending_bytes_total", \.ingest.maxPendingBytesTotal),
        .set("hub.max_unevaluated_batches", \.ingest.maxUnevaluatedBatches),
        .set("hub.max_bytes_per_second", \.ingest.maxBytesPerSecond),
        .set("hub.max_connections", \.http.maxConnections),
        .duration("hub.http_idle_timeout", \.http.idleTimeout),
        .set("hub.max_header_bytes", \.http.maxHeaderBytes),
        .duration("hub.http_head_timeout", \.http.headTimeout),
        .set("hub.max_connections_per_address", \.http.maxConnectionsPerAddress),
        .duration("hub.statement_timeout", \.databaseStatementTimeout),
        .custom("hub.toast_compression") { c, v, source in
            let value = try String.read(v, "hub.toast_compression", source: source)
            guard let method = ToastCompression(rawValue: value.lowercased()) else {
                throw ConfigurationError("\(source): hub.toast_compression '\(value)' is not one of auto, lz4, pglz")
            }
            c.toastCompression = method
        },
        .duration("hub.outage_credentials_max_age", \.outageCredentialMaxAge),
        .custom("hub.trusted_proxies") { c, v, source in
            c.http.trustedProxies = try TrustedProxies(parsing: [String].read(v, "hub.trusted_proxies", source: source),
                                                       source: "\(source): hub.trusted_proxies")
        },
        .set("hub.audit_retention_days", \.auditRetentionDays),
        .duration("hub.memory_trim_interval", \.memoryTrimInterval),

        .set("retention.raw_days", \.retention.rawDays),
        .set("retention.minute_rollup_days", \.retention.minuteRollupDays),
        .set("retention.hour_rollup_days", \.retention.hourRollupDays),
        .duration("retention.rollup_interval", \.retention.rollupInterval),
        .duration("retention.rechunk_after", \.retention.rechunkAfter),

        .duration("emergency.command_ttl", \.emergency.frameTTL),
        .duration("emergency.acknowledge_timeout", \.emergency.acknowledgeTimeout),
        .duration("emergency.poll_interval", \.emergency.pollInterval),
        .set("emergency.requests_per_minute", \.emergency.requestsPerMinute),

        .set("alerts.enabled", \.alerts.enabled),
        .set("alerts.console_alerts", \.alerts.console),
        .set("alerts.log_alerts", \.alerts.log),
        .set("alerts.dashboard_alerts", \.alerts.dashboard),
        .set("alerts.email_notifications", \.alerts.email),
        .set("alerts.webhook_notifications", \.alerts.webhook),
        .set("alerts.alertmanager_notifications", \.alerts.alertmanager),
        .set("alerts.alertmanager.url", \.alerts.alertmanagerURL),
        .set("alerts.alertmanager.min_level", \.alerts.alertmanagerMinimumLevel),
        .duration("alerts.alertmanager.timeout", \.alerts.alertmanagerTimeout),
        .duration("alerts.alertmanager.resend_interval", \.alerts.alertmanagerResendInterval),
        .set("alerts.console_min_level", \.alerts.consoleMinimumLevel),
        .seconds("alerts.no_data_seconds", \.alerts.noDataSeconds),
        .set("alerts.webhook.url", \.alerts.webhookURL),
        .set("alerts.webhook.secret", \.alerts.webhookSecret),
        .duration("alerts.webhook.timeout", \.alerts.webhookTimeout),
        .set("alerts.webhook.min_level", \.alerts.webhookMinimumLevel),
        .set("alerts.webhook.format", \.alerts.webhookFormat),
        .set("alerts.webhook.chat_id", \.alerts.webhookChatID),
        .set("alerts.email.host", \.alerts.emailHost),
        .set("alerts.email.port", \.alerts.emailPort),
        .set("alerts.email.security", \.alerts.emailSecurity),
        .set("alerts.email.username", \.alerts.emailUsername),
        .set("alerts.email.password", \.alerts.emailPassword),
        .set("alerts.email.from", \.alerts.emailFrom),
        .set("alerts.email.to", \.alerts.emailTo),
        .set("alerts.email.verify_certificate", \.alerts.emailVerifyCertificate),
        .set("alerts.email.min_level", \.alerts.emailMinimumLevel),
        .optionalString("alerts.log_file", \.alerts.logFile),
        .set("alerts.log_file_max_bytes", \.alerts.logFileMaxBytes),
        .set("alerts.log_file_keep", \.alerts.logFileKeep),
        .seconds("alerts.cooldowns.info", \.alerts.cooldownInfo),
        .seconds("alerts.cooldowns.warning", \.alerts.cooldownWarning),
        .seconds("alerts.cooldowns.critical", \.alerts.cooldownCritical),
    ]

    /// Groups that must name a key when present (a webhook without its address is a mistake, not a default).
    static let requiredConfigKeys: [String: String] = [
        "alerts.webhook": "url", "alerts.email": "host", "alerts.alertmanager": "url",
    ]

    /// Sections whose keys are free (checked by their own parser).
    static let freeConfigSections: Set<String> = ["thresholds"]

    /// Applies a JSON configuration file's contents; `source` (the file's path) names it in errors and becomes
    /// the profile. Throws only `ConfigurationError`.
    mutating func apply(json data: Data, source: String) throws {
        let root: [String: JSONValue]
        do {
            guard case .object(let r) = try JSONDecoder().decode(JSONValue.self, from: data) else {
                throw ConfigurationError("\(source): a configuration file is one JSON object of sections")
            }
            root = r
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError("\(source): not valid JSON (\(error))")
        }
        let values = try Self.configValues(root, source: source)
        profile = source
        for key in Self.configKeys {
            if let v = values[key.path] { try key.apply(&self, v, source) }
        }
        if let t = root["thresholds"], t != .null {
            guard case .object(let raw) = t else { throw ConfigurationError("\(source): thresholds must be an object of limits") }
            var settings: [String: ThresholdValue] = [:]
            for (key, value) in raw {
                switch value {
                case .integer(let i): settings[key] = .number(Double(i))
                case .number(let d): settings[key] = .number(d)
                case .string(let s): settings[key] = .text(s)
                default: throw ConfigurationError("\(source): thresholds.\(key) must be a number (or a level name for .level keys)")
                }
            }
            do { thresholds = try ThresholdSettings.parse(settings) } catch let error as ThresholdError {
                throw ConfigurationError("\(source): thresholds.\(error.description)")
            }
        }
        try validate(source: source)
    }

    /// The file's values by dotted path; an unknown section or key, or a group missing its required key, is an
    /// error naming it. A null counts as absent.
    static func configValues(_ root: [String: JSONValue], source: String) throws -> [String: JSONValue] {
        let known = Set(configKeys.map(\.path))
        // Every prefix of a key is a section or group: its children are what may appear in it.
        var children: [String: Set<String>] = ["": []]
        for path in known {
            let parts = path.split(separator: ".").map(String.init)
            for i in parts.indices {
                children[parts[..<i].joined(separator: "."), default: []].insert(parts[i])
            }
        }
        children[""]?.formUnion(freeConfigSections)
        var out: [String: JSONValue] = [:]
        func walk(_ object: [String: JSONValue], at prefix: String) throws {
            let allowed = children[prefix] ?? []
            for (name, value) in object where value != .null {
                let path = prefix.isEmpty ? name : "\(prefix).\(name)"
                if prefix.isEmpty, freeConfigSections.contains(name) { continue }
                guard allowed.contains(name) else {
                    if prefix.isEmpty {
                        throw ConfigurationError("\(source): unknown section \"\(name)\" (known: \(allowed.sorted().joined(separator: ", ")))")
                    }
                    throw ConfigurationError("\(source): unknown key \"\(path)\" (known: \(allowed.sorted().joined(separator: ", ")))")
                }
                if known.contains(path) {
                    out[path] = value
                } else {
                    guard case .object(let inner) = value else {
                        throw ConfigurationError("\(source): \(path) must be an object of settings (\((children[path] ?? []).sorted().joined(separator: ", ")))")
                    }
                    if let required = requiredConfigKeys[path], inner[required] == nil || inner[required] == .null {
                        throw ConfigurationError("\(source): \(path).\(required) is missing")
                    }
                    try walk(inner, at: path)
                }
            }
        }
        try walk(root, at: "")
        return out
    }
}
