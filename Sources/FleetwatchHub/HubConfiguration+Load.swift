import FleetwatchAlerting
import FleetwatchNotify
import FleetwatchProtocol
import Foundation
import Logging

extension HubConfiguration {
    /// Builds a configuration: defaults, then the profile or JSON file named by `config` (or by
    /// `FLEETWATCH_CONFIG`), then `FLEETWATCH_*` environment variables. Command-line flags are applied by the
    /// caller last.
    public static func load(config: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> HubConfiguration {
        var c = HubConfiguration()
        let config = config ?? environment["FLEETWATCH_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        switch config {
        case nil, "default":
            break
        case "production":
            c.profile = "production"
            c.monitoring.healthCheckInterval = 180
            c.monitoring.enableEmergencyShutdown = true
        case "development":
            c.profile = "development"
            c.monitoring.healthCheckInterval = 600
            c.monitoring.enableEmergencyShutdown = false
            c.logLevel = .debug
        case let path?:
            guard FileManager.default.fileExists(atPath: path) else {
                throw ConfigurationError("--config \(path): no such file, and not a built-in profile (production, development)")
            }
            try c.apply(file: path)
        }
        try c.apply(environment: environment)
        c.disableIncompleteChannels()
        return c
    }

    /// A channel switched on without the settings it needs is switched off, with a warning naming the missing key
    /// (logged at every start): the reference system's production configuration turns email and webhook alerts
    /// on without saying where to send them, and must still start.
    mutating func disableIncompleteChannels() {
        if alerts.webhook, alerts.webhookURL == nil {
            alerts.webhook = false
            warnings.append("alerts.webhook_notifications is on but alerts.webhook.url is missing: webhook alerts are OFF")
        }
        if alerts.alertmanager, alerts.alertmanagerURL == nil {
            alerts.alertmanager = false
            warnings.append("alerts.alertmanager_notifications is on but alerts.alertmanager.url is missing: Alertmanager alerts are OFF")
        }
        if alerts.email, alerts.emailHost == nil || alerts.emailTo.isEmpty {
            alerts.email = false
            let missing = [alerts.emailHost == nil ? "alerts.email.host" : nil, alerts.emailTo.isEmpty ? "alerts.email.to" : nil]
                .compactMap { $0 }.joined(separator: " and ")
            warnings.append("alerts.email_notifications is on but \(missing) \(missing.contains(" and ") ? "are" : "is") missing: email alerts are OFF")
        }
    }

    mutating func apply(file path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ConfigurationError("\(path): cannot read: \(error.localizedDescription)")
        }
        try apply(json: data, source: path)
    }

    /// Parses the contents of a JSON configuration file on top of the defaults, as `--config FILE` does with
    /// the file's bytes (no profile, no environment). Any input gives a valid configuration or throws a
    /// `ConfigurationError` naming `source` and the key; the parsers' fuzz target (`Fuzz/parsers`) holds it to that.
    public static func parse(json: Data, source: String = "fuzz") throws -> HubConfiguration {
        var c = HubConfiguration()
        try c.apply(json: json, source: source)
        c.disableIncompleteChannels()
        return c
    }

    /// The most seconds a duration setting may name (about 31 years): more than any setting needs, and small
    /// enough that the milliseconds, nanoseconds and deadlines computed from it fit in 64 bits.
    static let maxSettingSeconds: Double = 1_000_000_000

    /// A number of seconds from the file as whole milliseconds. A negative, non-finite or huge number is a
    /// `ConfigurationError` (`Int64(_:)` would trap on it).
    static func fileMilliseconds(_ seconds: Double, _ key: String, source: String) throws -> Int64 {
        guard seconds.isFinite, seconds >= 0, seconds <= maxSettingSeconds else {
            throw ConfigurationError("\(source): \(key) must be a number of seconds between 0 and \(Int64(maxSettingSeconds))")
        }
        return Int64(seconds * 1000)
    }

    /// A number of seconds from the file as a duration (millisecond resolution), range-checked like `fileMilliseconds`.
    static func fileDuration(_ seconds: Double, _ key: String, source: String) throws -> Duration {
        let ms = try fileMilliseconds(seconds, key, source: source)
        return .milliseconds(ms)
    }

    /// Applies a JSON configuration file's contents; `source` (the file's path) names it in errors and becomes
    /// the profile. Throws only `ConfigurationError`.
    mutating func apply(json data: Data, source: String) throws {
        let f: ConfigFile
        do { f = try JSONDecoder().decode(ConfigFile.self, from: data) } catch let error as DecodingError {
            throw ConfigurationError("\(source): \(ConfigFile.explain(error))")
        } catch {
            throw ConfigurationError("\(source): not valid JSON (\(error))")
        }
        try ConfigFile.checkKeys(data, file: source)
        profile = source
        if let m = f.monitoring {
            if let v = m.health_check_interval {
                _ = try Self.fileMilliseconds(v, "monitoring.health_check_interval", source: source)
                monitoring.healthCheckInterval = v
            }
            if let v = m.enable_emergency_shutdown { monitoring.enableEmergencyShutdown = v }
            if let v = m.profile {
                guard let base = ThresholdProfile.builtIn[v] else {
                    throw ConfigurationError("\(source): monitoring.profile must be default, production or development")
                }
                baseProfile = v
                // The built-in profile's own setting, unless the file says otherwise.
                if m.enable_emergency_shutdown == nil { monitoring.enableEmergencyShutdown = base.enableEmergencyShutdown }
            }
        }
        if let d = f.dashboard {
            if let v = d.enabled { dashboardEnabled = v }
            if let v = d.port { port = v }
            if let v = d.admin_user { dashboard.adminUser = v }
            if let v = d.admin_password { dashboard.adminPassword = v }
            if let v = d.admin_password_file { dashboard.adminPasswordFile = v }
            if let v = d.allowed_origins { dashboard.allowedOrigins = v }
            if let v = d.session_idle_timeout { dashboard.sessionIdleTimeout = try Self.fileDuration(v, "dashboard.session_idle_timeout", source: source) }
            if let v = d.login_attempts_per_minute { dashboard.loginAttemptsPerMinute = v }
            if let v = d.chartjs_path { dashboard.chartJSPath = v }
            if let v = d.update_interval { dashboard.updateInterval = try Self.fileDuration(v, "dashboard.update_interval", source: source) }
            if let v = d.ping_interval { dashboard.pingInterval = try Self.fileDuration(v, "dashboard.ping_interval", source: source) }
            if let v = d.session_check_interval {
                dashboard.sessionCheckInterval = try Self.fileDuration(v, "dashboard.session_check_interval", source: source)
            }
        }
        if let h = f.hub {
            if let v = h.host { host = v }
            if let v = h.port { port = v }
            if let v = h.database_url { databaseURL = v }
            if let v = h.read_database_url { readDatabaseURL = v }
            if let v = h.public_url { publicURL = v.isEmpty ? nil : v }
            if let v = h.metrics_auth {
                guard let a = MetricsAuth(rawValue: v) else { throw ConfigurationError("\(source): hub.metrics_auth must be none or token") }
                metricsAuth = a
            }
            if let v = h.database_start_timeout {
                databaseStartTimeout = try Self.fileDuration(v, "hub.database_start_timeout", source: source)
            }
            if let v = h.data_dir { dataDirectory = v }
            if let v = h.auto_register { autoRegister = v }
            if let v = h.id { ingest.hubID = v }
            if let v = h.log_level { logLevel = try Self.level(v, from: "\(source): hub.log_level") }
            if let v = h.log_format { logFormat = try Self.logFormat(v, from: "\(source): hub.log_format") }
            if let v = h.tls_certificate { tlsCertificatePath = v }
            if let v = h.tls_key { tlsKeyPath = v }
            if let v = h.max_frame_bytes { ingest.maxFrameBytes = v }
            if let v = h.max_payload_bytes { ingest.limits.maxPayloadBytes = v }
            if let v = h.max_samples_per_batch { ingest.limits.maxSamples = v }
            if let v = h.heartbeat_interval { ingest.heartbeatInterval = try Self.fileDuration(v, "hub.heartbeat_interval", source: source) }
            if let v = h.max_sample_age { ingest.validator.maxAgeMs = try Self.fileMilliseconds(v, "hub.max_sample_age", source: source) }
            if let v = h.max_sample_future { ingest.validator.maxFutureMs = try Self.fileMilliseconds(v, "hub.max_sample_future", source: source) }
            if let v = h.max_metric_names_per_bot { ingest.maxMetricNamesPerBot = v }
            if let v = h.max_metric_names { ingest.maxMetricNames = v }
            if let v = h.max_pending_bytes { ingest.maxPendingBytes = v }
            if let v = h.max_pending_bytes_total { ingest.maxPendingBytesTotal = v }
            if let v = h.max_bytes_per_second { ingest.maxBytesPerSecond = v }
            if let v = h.max_connections { http.maxConnections = v }
            if let v = h.http_idle_timeout { http.idleTimeout = try Self.fileDuration(v, "hub.http_idle_timeout", source: source) }
            if let v = h.max_header_bytes { http.maxHeaderBytes = v }
            if let v = h.http_head_timeout { http.headTimeout = try Self.fileDuration(v, "hub.http_head_timeout", source: source) }
            if let v = h.max_connections_per_address { http.maxConnectionsPerAddress = v }
            if let v = h.statement_timeout { databaseStatementTimeout = try Self.fileDuration(v, "hub.statement_timeout", source: source) }
            if let v = h.outage_credentials_max_age {
                outageCredentialMaxAge = try Self.fileDuration(v, "hub.outage_credentials_max_age", source: source)
            }
            if let v = h.trusted_proxies { http.trustedProxies = try TrustedProxies(parsing: v, source: "\(source): hub.trusted_proxies") }
            if let v = h.audit_retention_days { auditRetentionDays = v }
        }
        if let t = f.thresholds {
            do { thresholds = try ThresholdSettings.parse(t) } catch let error as ThresholdError {
                throw ConfigurationError("\(source): thresholds.\(error.description)")
            }
        }
        if let r = f.retention {
            if let v = r.raw_days { retention.rawDays = v }
            if let v = r.minute_rollup_days { retention.minuteRollupDays = v }
            if let v = r.hour_rollup_days { retention.hourRollupDays = v }
            if let v = r.rollup_interval { retention.rollupInterval = try Self.fileDuration(v, "retention.rollup_interval", source: source) }
            if let v = r.rechunk_after { retention.rechunkAfter = try Self.fileDuration(v, "retention.rechunk_after", source: source) }
        }
        if let e = f.emergency {
            if let v = e.command_ttl { emergency.frameTTL = try Self.fileDuration(v, "emergency.command_ttl", source: source) }
            if let v = e.acknowledge_timeout { emergency.acknowledgeTimeout = try Self.fileDuration(v, "emergency.acknowledge_timeout", source: source) }
            if let v = e.poll_interval { emergency.pollInterval = try Self.fileDuration(v, "emergency.poll_interval", source: source) }
            if let v = e.requests_per_minute { emergency.requestsPerMinute = v }
        }
        if let a = f.alerts {
            if let v = a.enabled { alerts.enabled = v }
            if let v = a.console_alerts { alerts.console = v }
            if let v = a.log_alerts { alerts.log = v }
            if let v = a.dashboard_alerts { alerts.dashboard = v }
            if let v = a.email_notifications { alerts.email = v }
            if let v = a.webhook_notifications { alerts.webhook = v }
            if let v = a.alertmanager_notifications { alerts.alertmanager = v }
            if let m = a.alertmanager {
                alerts.alertmanagerURL = m.url
                if let v = m.min_level { alerts.alertmanagerMinimumLevel = v }
                if let v = m.timeout { alerts.alertmanagerTimeout = try Self.fileDuration(v, "alerts.alertmanager.timeout", source: source) }
                if let v = m.resend_interval {
                    alerts.alertmanagerResendInterval = try Self.fileDuration(v, "alerts.alertmanager.resend_interval", source: source)
                }
            }
            if let v = a.console_min_level { alerts.consoleMinimumLevel = v }
            if let v = a.no_data_seconds {
                _ = try Self.fileMilliseconds(v, "alerts.no_data_seconds", source: source)   // the hub keeps it as milliseconds
                alerts.noDataSeconds = v
            }
            if let w = a.webhook {
                alerts.webhookURL = w.url
                alerts.webhookSecret = w.secret
                if let v = w.timeout { alerts.webhookTimeout = try Self.fileDuration(v, "alerts.webhook.timeout", source: source) }
                if let v = w.min_level { alerts.webhookMinimumLevel = v }
                if let v = w.format { alerts.webhookFormat = v }
                if let v = w.chat_id { alerts.webhookChatID = v }
            }
            if let e = a.email {
                alerts.emailHost = e.host
                if let v = e.port { alerts.emailPort = v }
                if let v = e.security { alerts.emailSecurity = v }
                alerts.emailUsername = e.username
                alerts.emailPassword = e.password
                if let v = e.from { alerts.emailFrom = v }
                if let v = e.to { alerts.emailTo = v }
                if let v = e.verify_certificate { alerts.emailVerifyCertificate = v }
                if let v = e.min_level { alerts.emailMinimumLevel = v }
            }
            if let v = a.log_file { alerts.logFile = v.isEmpty ? nil : v }
            if let v = a.log_file_max_bytes { alerts.logFileMaxBytes = v }
            if let v = a.log_file_keep { alerts.logFileKeep = v }
            if let c = a.cooldowns {
                // Kept in seconds, used as milliseconds: range-checked here.
                if let v = c.info { _ = try Self.fileMilliseconds(v, "alerts.cooldowns.info", source: source); alerts.cooldownInfo = v }
                if let v = c.warning { _ = try Self.fileMilliseconds(v, "alerts.cooldowns.warning", source: source); alerts.cooldownWarning = v }
                if let v = c.critical { _ = try Self.fileMilliseconds(v, "alerts.cooldowns.critical", source: source); alerts.cooldownCritical = v }
            }
        }
        try validate(source: source)
    }

    /// Refuses values the hub cannot run with.
    func validate(source: String) throws {
        func require(_ ok: Bool, _ what: String) throws {
            if !ok { throw ConfigurationError("\(source): \(what)") }
        }
        try require((0...65535).contains(port), "port must be 0–65535")
        try require((tlsCertificatePath == nil) == (tlsKeyPath == nil), "hub.tls_certificate and hub.tls_key go together")
        try require(databaseStatementTimeout == .zero || (databaseStatementTimeout >= .seconds(1) && databaseStatementTimeout <= .seconds(3600)),
                    "hub.statement_timeout must be 0 (none) or 1–3600 seconds")
        try require(outageCredentialMaxAge >= .zero && outageCredentialMaxAge <= .seconds(86_400),
                    "hub.outage_credentials_max_age must be 0 (none) to 86400 seconds")
        try require(databaseStartTimeout >= .zero && databaseStartTimeout <= .seconds(3600), "hub.database_start_timeout must be 0–3600 seconds")
        try require((1024...(64 << 20)).contains(ingest.maxFrameBytes), "hub.max_frame_bytes must be 1024–67108864")
        try require((1024...(256 << 20)).contains(ingest.limits.maxPayloadBytes), "hub.max_payload_bytes must be 1024–268435456")
        try require((1...1_000_000).contains(ingest.limits.maxSamples), "hub.max_samples_per_batch must be 1–1000000")
        try require(ingest.heartbeatInterval >= .milliseconds(100) && ingest.heartbeatInterval <= .seconds(3600),
                    "hub.heartbeat_interval must be 0.1–3600 seconds")
        try require((1...1_000_000).contains(ingest.maxMetricNamesPerBot), "hub.max_metric_names_per_bot must be 1–1000000")
        try require((1...100_000_000).contains(ingest.maxMetricNames), "hub.max_metric_names must be 1–100000000")
        try require((65_536...(1 << 30)).contains(ingest.maxPendingBytes), "hub.max_pending_bytes must be 65536–1073741824")
        try require((1 << 20...(64 << 30)).contains(ingest.maxPendingBytesTotal), "hub.max_pending_bytes_total must be 1048576–68719476736")
        try require(ingest.maxPendingBytesTotal >= ingest.maxPendingBytes,
                    "hub.max_pending_bytes_total (all connections) must be at least hub.max_pending_bytes (one connection)")
        try require((1024...(1 << 30)).contains(ingest.maxBytesPerSecond), "hub.max_bytes_per_second must be 1024–1073741824")
        try require((1...1_000_000).contains(http.maxConnections), "hub.max_connections must be 1–1000000")
        try require(http.idleTimeout >= .seconds(1), "hub.http_idle_timeout must be at least 1 second")
        try require((1024...(1 << 20)).contains(http.maxHeaderBytes), "hub.max_header_bytes must be 1024–1048576")
        try require(http.headTimeout >= .seconds(1) && http.headTimeout <= .seconds(300), "hub.http_head_timeout must be 1–300 seconds")
        try require((1...1_000_000).contains(http.maxConnectionsPerAddress), "hub.max_connections_per_address must be 1–1000000")
        try require(ingest.maxBytesPerSecond * 20 >= ingest.limits.maxPayloadBytes,
                    "hub.max_bytes_per_second must be at least hub.max_payload_bytes / 20 (a largest batch may not hold its connection's reading for more than 20 s)")
        try require((1...36_500).contains(auditRetentionDays), "hub.audit_retention_days must be 1–36500")
        try require(ingest.validator.maxAgeMs > 0 && ingest.validator.maxFutureMs >= 0, "hub.max_sample_age must be > 0 and hub.max_sample_future ≥ 0")
        try require(monitoring.healthCheckInterval > 0, "monitoring.health_check_interval must be > 0")
        try require(WebhookFormat(rawValue: alerts.webhookFormat) != nil,
                    "alerts.webhook.format must be one of \(WebhookFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        try require(alerts.webhookFormat != "telegram" || !(alerts.webhookChatID ?? "").isEmpty,
                    "alerts.webhook.format telegram needs alerts.webhook.chat_id (the chat the bot posts to)")
        try require(alerts.alertmanagerResendInterval >= .seconds(1) && alerts.alertmanagerResendInterval <= .seconds(3600),
                    "alerts.alertmanager.resend_interval must be 1–3600 seconds")
        try require(alerts.alertmanagerURL.map { $0.hasPrefix("http://") || $0.hasPrefix("https://") } ?? true,
                    "alerts.alertmanager.url must start with http:// or https:// (Alertmanager's base address, e.g. http://alertmanager:9093)")
        for (key, level) in [("alerts.console_min_level", alerts.consoleMinimumLevel), ("alerts.webhook.min_level", alerts.webhookMinimumLevel),
                             ("alerts.alertmanager.min_level", alerts.alertmanagerMinimumLevel)] {
            try require(["INFO", "WARNING", "CRITICAL"].contains(level), "\(key) must be INFO, WARNING or CRITICAL")
        }
        try require((4096...(1 << 30)).contains(alerts.logFileMaxBytes), "alerts.log_file_max_bytes must be 4096–1073741824")
        try require((1...100).contains(alerts.logFileKeep), "alerts.log_file_keep must be 1–100")
        try require(["plain", "starttls", "tls"].contains(alerts.emailSecurity), "alerts.email.security must be plain, starttls or tls")
        try require(MailFormat.isPlainAddress(alerts.emailFrom) && alerts.emailTo.allSatisfy(MailFormat.isPlainAddress),
                    "alerts.email.from and alerts.email.to must be plain addresses (local@domain, no spaces, brackets or control characters)")
        try require(["INFO", "WARNING", "CRITICAL"].contains(alerts.emailMinimumLevel), "alerts.email.min_level must be INFO, WARNING or CRITICAL")
        try require(dashboard.sessionIdleTimeout >= .seconds(60), "dashboard.session_idle_timeout must be at least 60 seconds")
        try require((1...10_000).contains(dashboard.loginAttemptsPerMinute), "dashboard.login_attempts_per_minute must be 1–10000")
        try require(dashboard.updateInterval >= .milliseconds(50) && dashboard.updateInterval <= .seconds(10),
                    "dashboard.update_interval must be 0.05–10 seconds")
        try require(dashboard.pingInterval >= .milliseconds(100) && dashboard.pingInterval <= .seconds(300),
                    "dashboard.ping_interval must be 0.1–300 seconds")
        try require(dashboard.sessionCheckInterval >= .milliseconds(100) && dashboard.sessionCheckInterval <= .seconds(300),
                    "dashboard.session_check_interval must be 0.1–300 seconds")
        try require(dashboard.adminPassword.map { $0.count >= 12 } ?? true, "dashboard.admin_password needs at least 12 characters")
        try require(retention.rawDays >= 8, "retention.raw_days must be at least 8 (samples up to 7 days old are accepted)")
        try require(retention.minuteRollupDays >= 1 && retention.hourRollupDays >= 1, "retention rollup days must be at least 1")
        try require(retention.rawDays <= 36_500 && retention.minuteRollupDays <= 36_500 && retention.hourRollupDays <= 36_500,
                    "retention days must be at most 36500 (100 years)")
        try require(retention.rollupInterval >= .seconds(1) && retention.rollupInterval <= .seconds(600),
                    "retention.rollup_interval must be 1–600 seconds")
        try require(retention.rechunkAfter >= .zero && retention.rechunkAfter <= .seconds(3000),
                    "retention.rechunk_after must be 0 (never) to 3000 seconds (it must leave the late window, an hour, to catch up)")
        try require(emergency.frameTTL >= .seconds(5) && emergency.frameTTL <= .seconds(3600), "emergency.command_ttl must be 5–3600 seconds")
        try require(emergency.requestsPerMinute >= 1, "emergency.requests_per_minute must be at least 1")
        try require(emergency.acknowledgeTimeout >= .seconds(1), "emergency.acknowledge_timeout must be at least 1 second")
        try require(emergency.pollInterval >= .milliseconds(100) && emergency.pollInterval <= .seconds(60),
                    "emergency.poll_interval must be 0.1–60 seconds")
        try require(alerts.noDataSeconds >= 5, "alerts.no_data_seconds must be at least 5")
        for key in thresholds.unknownKeys() {
            throw ConfigurationError("\(source): unknown threshold \"thresholds.\(key)\" (known: \(ThresholdProfile.standard.rules.map(\.id).joined(separator: ", ")); add .hysteresis or .level to a rule id for those)")
        }
        try require(alerts.cooldownInfo >= 0 && alerts.cooldownWarning >= 0 && alerts.cooldownCritical >= 0, "alerts.cooldowns must be ≥ 0")
    }

    /// A secret from the environment: `NAME` or the file named by `NAME_FILE` (see `EnvironmentSecret`).
    /// `text` or `json`; anything else is an error naming where it came from.
    public static func logFormat(_ value: String, from source: String) throws -> LogFormat {
        guard let f = LogFormat(rawValue: value.lowercased()) else {
            throw ConfigurationError("\(source): log format '\(value)' is not one of text, json")
        }
        return f
    }

    static func secret(_ name: String, _ env: [String: String]) throws -> String? {
        do { return try EnvironmentSecret.read(name, env) } catch let f as EnvironmentSecret.Failure {
            throw ConfigurationError(f.description)
        }
    }

    mutating func apply(environment env: [String: String]) throws {
        if let v = env["FLEETWATCH_HOST"] { host = v }
        if let v = env["FLEETWATCH_PORT"] {
            guard let p = Int(v), (0...65535).contains(p) else { throw ConfigurationError("FLEETWATCH_PORT=\(v) is not a port number") }
            port = p
        }
        if let v = try Self.secret("FLEETWATCH_DATABASE_URL", env), !v.isEmpty { databaseURL = v }
        if let v = try Self.secret("FLEETWATCH_READ_DATABASE_URL", env), !v.isEmpty { readDatabaseURL = v }
        if let v = try Self.secret("FLEETWATCH_DATABASE_PASSWORD", env), !v.isEmpty { databasePassword = v }
        if let v = try Self.secret("FLEETWATCH_ADMIN_DATABASE_URL", env), !v.isEmpty { adminDatabaseURL = v }
        if let v = try Self.secret("FLEETWATCH_ADMIN_DATABASE_PASSWORD", env), !v.isEmpty { adminDatabasePassword = v }
        if let v = env["FLEETWATCH_DATA_DIR"] { dataDirectory = v }
        if let v = env["FLEETWATCH_HUB_ID"] { ingest.hubID = v }
        if let v = env["FLEETWATCH_TRUSTED_PROXIES"] {
            http.trustedProxies = try TrustedProxies(parsing: v.split(separator: ",").map(String.init).filter { !$0.isEmpty },
                                                     source: "FLEETWATCH_TRUSTED_PROXIES")
        }
        if let v = env["FLEETWATCH_AUTO_REGISTER"] { autoRegister = ["1", "true", "yes"].contains(v.lowercased()) }
        if let v = env["FLEETWATCH_LOG_LEVEL"] { logLevel = try Self.level(v, from: "FLEETWATCH_LOG_LEVEL") }
        if let v = env["FLEETWATCH_LOG_FORMAT"] { logFormat = try Self.logFormat(v, from: "FLEETWATCH_LOG_FORMAT") }
        if let v = env["FLEETWATCH_TLS_CERT"], !v.isEmpty { tlsCertificatePath = v }
        if let v = env["FLEETWATCH_TLS_KEY"], !v.isEmpty { tlsKeyPath = v }
        if let v = try Self.secret("FLEETWATCH_SMTP_PASSWORD", env) { alerts.emailPassword = v }
        if let v = try Self.secret("FLEETWATCH_WEBHOOK_SECRET", env) { alerts.webhookSecret = v }
        if let v = env["FLEETWATCH_ALERTMANAGER_URL"] {
            guard v.isEmpty || v.hasPrefix("http://") || v.hasPrefix("https://") else {
                throw ConfigurationError("FLEETWATCH_ALERTMANAGER_URL=\(v): give Alertmanager's base address, e.g. http://alertmanager:9093")
            }
            alerts.alertmanagerURL = v.isEmpty ? nil : v
            alerts.alertmanager = !v.isEmpty
        }
        if let v = env["FLEETWATCH_PUBLIC_URL"] { publicURL = v.isEmpty ? nil : v }
        if let v = env["FLEETWATCH_METRICS_AUTH"] {
            guard let a = MetricsAuth(rawValue: v) else { throw ConfigurationError("FLEETWATCH_METRICS_AUTH=\(v): use none or token") }
            metricsAuth = a
        }
        if let v = try Self.secret("FLEETWATCH_ADMIN_PASSWORD", env), !v.isEmpty { dashboard.adminPassword = v }
    }

    /// Parses a log level name.
    public static func level(_ s: String, from source: String) throws -> Logger.Level {
        guard let l = Logger.Level(rawValue: s.lowercased()) else {
            throw ConfigurationError("\(source)=\(s): use one of trace, debug, info, notice, warning, error, critical")
        }
        return l
    }
}

/// The JSON configuration file: the reference system's `monitoring_config.json` shape plus a `hub` section.
struct ConfigFile: Decodable {
    struct Monitoring: Decodable {
        var health_check_interval: Double?
        var enable_emergency_shutdown: Bool?
        var profile: String?
    }
    struct Dashboard: Decodable {
        var enabled: Bool?
        var port: Int?
        var admin_user: String?
        var admin_password: String?
        var admin_password_file: String?
        var allowed_origins: [String]?
        var session_idle_timeout: Double?
        var login_attempts_per_minute: Int?
        var chartjs_path: String?
        var update_interval: Double?
        var ping_interval: Double?
        var session_check_interval: Double?
    }
    struct Hub: Decodable {
        var host: String?
        var port: Int?
        var database_url: String?
        var read_database_url: String?
        var public_url: String?
        var metrics_auth: String?
        var database_start_timeout: Double?
        var trusted_proxies: [String]?
        var statement_timeout: Double?
        var outage_credentials_max_age: Double?
        var data_dir: String?
        var auto_register: Bool?
        var id: String?
        var log_level: String?
        var log_format: String?
        var tls_certificate: String?
        var tls_key: String?
        var max_frame_bytes: Int?
        var max_payload_bytes: Int?
        var max_samples_per_batch: Int?
        var heartbeat_interval: Double?
        var max_sample_age: Double?
        var max_sample_future: Double?
        var max_metric_names_per_bot: Int?
        var max_metric_names: Int?
        var max_pending_bytes: Int?
        var max_bytes_per_second: Int?
        var max_pending_bytes_total: Int?
        var max_connections: Int?
        var http_idle_timeout: Double?
        var max_header_bytes: Int?
        var http_head_timeout: Double?
        var max_connections_per_address: Int?
        var audit_retention_days: Int?
    }
    struct Alerts: Decodable {
        struct Webhook: Decodable {
            var url: String
            var secret: String?
            var timeout: Double?
            var min_level: String?
            var format: String?
            var chat_id: String?
        }
        struct Email: Decodable {
            var host: String
            var port: Int?
            var security: String?
            var username: String?
            var password: String?
            var from: String?
            var to: [String]?
            var verify_certificate: Bool?
            var min_level: String?
        }
        struct Alertmanager: Decodable {
            var url: String
            var min_level: String?
            var timeout: Double?
            var resend_interval: Double?
        }
        struct Cooldowns: Decodable {
            var info: Double?
            var warning: Double?
            var critical: Double?
        }
        var enabled: Bool?
        var console_alerts: Bool?
        var log_alerts: Bool?
        var dashboard_alerts: Bool?
        var email_notifications: Bool?
        var webhook_notifications: Bool?
        var alertmanager_notifications: Bool?
        var alertmanager: Alertmanager?
        var console_min_level: String?
        var no_data_seconds: Double?
        var webhook: Webhook?
        var email: Email?
        var cooldowns: Cooldowns?
        var log_file: String?
        var log_file_max_bytes: Int?
        var log_file_keep: Int?
    }
    var monitoring: Monitoring?
    var dashboard: Dashboard?
    var hub: Hub?
    var thresholds: [String: ThresholdValue]?
    var alerts: Alerts?
    struct Emergency: Decodable {
        var command_ttl: Double?
        var acknowledge_timeout: Double?
        var poll_interval: Double?
        var requests_per_minute: Int?
    }
    var emergency: Emergency?
    struct Retention: Decodable {
        var raw_days: Int?
        var minute_rollup_days: Int?
        var hour_rollup_days: Int?
        var rollup_interval: Double?
        var rechunk_after: Double?
    }
    var retention: Retention?

    static let sections: [String: Set<String>] = [
        "monitoring": ["health_check_interval", "enable_emergency_shutdown", "profile"],
        "dashboard": ["enabled", "port", "admin_user", "admin_password", "admin_password_file", "allowed_origins", "session_idle_timeout",
                      "login_attempts_per_minute", "chartjs_path", "update_interval", "ping_interval", "session_check_interval"],
        "emergency": ["command_ttl", "acknowledge_timeout", "poll_interval", "requests_per_minute"],
        "retention": ["raw_days", "minute_rollup_days", "hour_rollup_days", "rollup_interval", "rechunk_after"],
        "hub": ["host", "port", "database_url", "read_database_url", "public_url", "metrics_auth", "database_start_timeout", "trusted_proxies", "statement_timeout", "log_format", "outage_credentials_max_age", "data_dir", "auto_register", "id", "log_level", "tls_certificate", "tls_key",
                "max_frame_bytes",
                "max_payload_bytes", "max_samples_per_batch", "heartbeat_interval", "max_sample_age", "max_sample_future",
                "max_metric_names_per_bot", "max_metric_names", "max_pending_bytes", "max_pending_bytes_total", "max_bytes_per_second", "max_connections", "http_idle_timeout",
                "max_header_bytes", "http_head_timeout", "max_connections_per_address", "audit_retention_days"],
        "alerts": ["enabled", "console_alerts", "log_alerts", "dashboard_alerts", "email_notifications", "webhook_notifications",
                   "alertmanager_notifications", "alertmanager", "console_min_level", "no_data_seconds", "webhook", "cooldowns", "email", "log_file", "log_file_max_bytes",
                   "log_file_keep"],
    ]
    static let freeSections: Set<String> = ["thresholds"]

    /// Refuses unknown sections and keys, so a typo is an error instead of a silently ignored setting.
    static func checkKeys(_ data: Data, file: String) throws {
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        for (section, value) in root {
            if freeSections.contains(section) { continue }
            guard let known = sections[section] else {
                throw ConfigurationError("\(file): unknown section \"\(section)\" (known: \((Array(sections.keys) + freeSections).sorted().joined(separator: ", ")))")
            }
            for key in (value as? [String: Any] ?? [:]).keys where !known.contains(key) {
                throw ConfigurationError("\(file): unknown key \"\(section).\(key)\" (known: \(known.sorted().joined(separator: ", ")))")
            }
        }
    }

    /// A decoding error as a sentence naming the key.
    static func explain(_ error: DecodingError) -> String {
        func path(_ c: [any CodingKey]) -> String { c.map(\.stringValue).joined(separator: ".") }
        switch error {
        case .typeMismatch(let type, let ctx): return "\(path(ctx.codingPath)) must be a \(type)"
        case .valueNotFound(let type, let ctx): return "\(path(ctx.codingPath)) must be a \(type), not null"
        case .keyNotFound(let key, let ctx): return "\(path(ctx.codingPath + [key])) is missing"
        case .dataCorrupted(let ctx): return "not valid JSON (\(ctx.debugDescription)) at \(path(ctx.codingPath))"
        @unknown default: return "\(error)"
        }
    }
}
