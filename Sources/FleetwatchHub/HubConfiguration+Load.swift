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
        try require((100...10_000_000).contains(ingest.maxUnevaluatedBatches), "hub.max_unevaluated_batches must be 100–10000000")
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
        try require(memoryTrimInterval == .zero || (.seconds(1) ... .seconds(3600)).contains(memoryTrimInterval),
                    "hub.memory_trim_interval must be 0 (never) or 1–3600 seconds")
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
