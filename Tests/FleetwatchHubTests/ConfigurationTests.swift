@testable import FleetwatchHub
import FleetwatchAlerting
import Foundation
import Testing

@Suite struct ConfigurationTests {
    static func file(_ json: String) throws -> String {
        let path = NSTemporaryDirectory() + "fw-config-\(UUID().uuidString).json"
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The dashboard and API listen on loopback only unless the operator says otherwise, and the sign-in
    /// limits are on by default; a file can open them up, with the values checked.
    @Test func theDashboardIsLocalUnlessConfigured() throws {
        let defaults = try HubConfiguration.load(config: nil, environment: [:])
        #expect(defaults.host == "127.0.0.1" && defaults.dashboardEnabled && defaults.dashboard.adminPassword == nil)
        #expect(defaults.dashboard.loginAttemptsPerMinute == 10 && defaults.dashboard.allowedOrigins.isEmpty)
        let opened = try HubConfiguration.parse(json: Data(#"{"hub": {"host": "0.0.0.0"}, "dashboard": {"allowed_origins": ["https://fleet.example.com"], "login_attempts_per_minute": 5}}"#.utf8))
        #expect(opened.host == "0.0.0.0" && opened.dashboard.allowedOrigins == ["https://fleet.example.com"] && opened.dashboard.loginAttemptsPerMinute == 5)
        #expect(throws: ConfigurationError.self) { try HubConfiguration.parse(json: Data(#"{"dashboard": {"admin_password": "short"}}"#.utf8)) }
        #expect(throws: ConfigurationError.self) { try HubConfiguration.parse(json: Data(#"{"dashboard": {"update_interval": 1e308}}"#.utf8)) }
    }

    @Test func profiles() throws {
        let prod = try HubConfiguration.load(config: "production", environment: [:])
        #expect(prod.monitoring.enableEmergencyShutdown && prod.monitoring.healthCheckInterval == 180)
        let dev = try HubConfiguration.load(config: "development", environment: [:])
        #expect(!dev.monitoring.enableEmergencyShutdown && dev.monitoring.healthCheckInterval == 600)
        #expect(try HubConfiguration.load(config: nil, environment: [:]).port == 8000)
    }

    /// The reference system's monitoring_config.json works as is.
    @Test func referenceConfigFile() throws {
        let path = try Self.file("""
            {"monitoring": {"health_check_interval": 300.0, "enable_emergency_shutdown": true},
             "thresholds": {"memory_usage_mb": 450.0, "trading_success_rate_percent": 88.0, "daily_pnl_loss_limit": -40.0},
             "alerts": {"enabled": true, "console_alerts": true, "log_alerts": true},
             "dashboard": {"enabled": true, "port": 8000}}
            """)
        let c = try HubConfiguration.load(config: path, environment: [:])
        #expect(c.monitoring.enableEmergencyShutdown)
        #expect(c.port == 8000)
    }

    @Test func environmentOverridesTheFile() throws {
        let path = try Self.file(#"{"hub": {"port": 9000, "database_url": "postgres://a@b/c"}}"#)
        let c = try HubConfiguration.load(config: path, environment: ["FLEETWATCH_PORT": "9100", "FLEETWATCH_DATABASE_URL": "postgres://x@y/z"])
        #expect(c.port == 9100)
        #expect(c.databaseURL == "postgres://x@y/z")
    }

    @Test(arguments: [
        (#"{"dashboard": {"port": "eighty"}}"#, "dashboard.port"),
        (#"{"monitoring": {"enable_emergency_shutdown": "yes"}}"#, "monitoring.enable_emergency_shutdown"),
        (#"{"thresholds": {"memory_usage_mb": "lots"}}"#, "thresholds.memory_usage_mb"),
        (#"{"monitoring": "#, "not valid JSON"),
        (#"{"hub": {"prot": 8000}}"#, "hub.prot"),
        (#"{"dashbord": {"port": 8000}}"#, "dashbord"),
        (#"{"hub": {"heartbeat_interval": 0}}"#, "heartbeat_interval"),
        (#"{"hub": {"max_frame_bytes": -1}}"#, "max_frame_bytes"),
        (#"{"thresholds": {"memory_usage": 400}}"#, "thresholds.memory_usage"),
        (#"{"thresholds": {"memory_usage_mb.level": "LOUD"}}"#, "memory_usage_mb.level must be"),
        (#"{"thresholds": {"memory_usag.level": "INFO"}}"#, "memory_usag.level"),
        (#"{"monitoring": {"profile": "staging"}}"#, "monitoring.profile"),
        (#"{"hub": {"max_bytes_per_second": 1024}}"#, "max_bytes_per_second"),
        (#"{"hub": {"max_pending_bytes_total": 1000}}"#, "hub.max_pending_bytes_total must be 1048576–68719476736"),
        (#"{"hub": {"max_pending_bytes_total": 2097152, "max_pending_bytes": 4194304}}"#, "must be at least hub.max_pending_bytes"),
        (#"{"hub": {"max_pending_bytes_total": "256M"}}"#, "max_pending_bytes_total"),
        (#"{"alerts": {"log_file_keep": 0}}"#, "alerts.log_file_keep"),
        (#"{"alerts": {"email": {"host": "h", "security": "ssl"}}}"#, "security"),
        (#"{"alerts": {"sms": true}}"#, "alerts.sms"),
        (#"{"emergency": {"command_ttl": 1}}"#, "emergency.command_ttl"),
        (#"{"emergency": {"acknowledge_timeout": 0}}"#, "emergency.acknowledge_timeout"),
        (#"{"emergency": {"poll": 2}}"#, "emergency.poll"),
        // Numbers a conversion to milliseconds would trap on, and ones the hub would trap on later.
        (#"{"hub": {"max_sample_age": 1e308}}"#, "hub.max_sample_age must be a number of seconds between"),
        (#"{"dashboard": {"session_idle_timeout": -1e308}}"#, "dashboard.session_idle_timeout must be a number of seconds"),
        (#"{"emergency": {"poll_interval": -1}}"#, "emergency.poll_interval must be a number of seconds"),
        (#"{"alerts": {"cooldowns": {"info": 1e300}}}"#, "alerts.cooldowns.info"),
        (#"{"alerts": {"no_data_seconds": 1e19}}"#, "alerts.no_data_seconds"),
        (#"{"retention": {"raw_days": 9223372036854775807}}"#, "retention days must be at most"),
        (#"{"alerts": {"webhook": {"url": "http://x", "format": "teams"}}}"#, "alerts.webhook.format must be one of fleetwatch, slack, discord, telegram"),
        (#"{"alerts": {"webhook": {"url": "http://x", "format": "telegram"}}}"#, "needs alerts.webhook.chat_id"),
        (#"{"hub": {"outage_credentials_max_age": -1}}"#, "hub.outage_credentials_max_age"),
        (#"{"hub": {"metrics_auth": "basic"}}"#, "hub.metrics_auth must be none or token"),
        (#"{"alerts": {"alertmanager": {"url": "alertmanager:9093"}}}"#, "alerts.alertmanager.url must start with http://"),
        (#"{"alerts": {"alertmanager": {"url": "http://am", "resend_interval": 0}}}"#, "alerts.alertmanager.resend_interval"),
        (#"{"alerts": {"alertmanager": {"url": "http://am", "min_level": "LOUD"}}}"#, "alerts.alertmanager.min_level"),
        (#"{"retention": {"rechunk_after": 7200}}"#, "retention.rechunk_after"),
        (#"{"hub": {"memory_trim_interval": 0.5}}"#, "hub.memory_trim_interval must be 0 (never) or 1–3600 seconds"),
        (#"{"hub": {"memory_trim_interval": -30}}"#, "hub.memory_trim_interval"),
        (#"{"hub": {"memory_trim_interval": 86400}}"#, "hub.memory_trim_interval must be 0 (never) or 1–3600 seconds"),
        (#"{"hub": {"max_unevaluated_batches": 99}}"#, "hub.max_unevaluated_batches must be 100–10000000"),
        (#"{"hub": {"max_unevaluated_batches": 0}}"#, "hub.max_unevaluated_batches must be 100–10000000"),
        (#"{"hub": {"max_unevaluated_batches": "10k"}}"#, "hub.max_unevaluated_batches"),
        (#"{"hub": {"toast_compression": "zstd"}}"#, "hub.toast_compression 'zstd' is not one of auto, lz4, pglz"),
        (#"{"hub": {"toast_compression": 4}}"#, "hub.toast_compression"),
    ])
    func badFilesGiveAClearError(json: String, mentions: String) throws {
        let path = try Self.file(json)
        let error = try #require(throws: ConfigurationError.self) { try HubConfiguration.load(config: path, environment: [:]) }
        #expect(error.description.contains(mentions), "\(error.description)")
        #expect(error.description.contains(path))
    }

    /// The memory trim runs every 30 s unless the file says otherwise; 0 turns it off.
    @Test func memoryTrimInterval() throws {
        #expect(HubConfiguration().memoryTrimInterval == .seconds(30))
        let off = try HubConfiguration.load(config: Self.file(#"{"hub": {"memory_trim_interval": 0}}"#), environment: [:])
        #expect(off.memoryTrimInterval == .zero)
        let often = try HubConfiguration.load(config: Self.file(#"{"hub": {"memory_trim_interval": 5}}"#), environment: [:])
        #expect(often.memoryTrimInterval == .seconds(5))
    }

    /// Batches waiting for alert evaluation are bounded at 10,000 unless the file says otherwise.
    @Test func maxUnevaluatedBatches() throws {
        #expect(HubConfiguration().ingest.maxUnevaluatedBatches == 10_000)
        let set = try HubConfiguration.load(config: Self.file(#"{"hub": {"max_unevaluated_batches": 500}}"#), environment: [:])
        #expect(set.ingest.maxUnevaluatedBatches == 500)
    }

    /// Large batches are compressed with lz4 where the server has it, unless the file says otherwise; asking for lz4
    /// from a server without it is refused with what to set, before any connection would fail on it.
    @Test func toastCompression() throws {
        #expect(HubConfiguration().toastCompression == .auto)
        let set = try HubConfiguration.load(config: Self.file(#"{"hub": {"toast_compression": "PGLZ"}}"#), environment: [:])
        #expect(set.toastCompression == .pglz)
        #expect(try ToastCompression.auto.sessionValue(offered: ["pglz", "lz4"]) == "lz4")
        #expect(try ToastCompression.auto.sessionValue(offered: ["pglz"]) == nil)
        #expect(try ToastCompression.pglz.sessionValue(offered: ["pglz", "lz4"]) == "pglz")
        #expect(try ToastCompression.lz4.sessionValue(offered: ["pglz", "lz4"]) == "lz4")
        let error = try #require(throws: ConfigurationError.self) { try ToastCompression.lz4.sessionValue(offered: ["pglz"]) }
        #expect(error.description.contains("built without lz4") && error.description.contains("set hub.toast_compression to auto or pglz"))
    }

    /// A channel switched on without its settings is switched off with a warning naming the missing key (the
    /// reference's production configuration turns email and webhook on without endpoints, and must start).
    @Test func incompleteChannelsAreOffWithAWarning() throws {
        let c = try HubConfiguration.parse(json: Data(#"{"alerts": {"email_notifications": true, "webhook_notifications": true}}"#.utf8))
        #expect(!c.alerts.email && !c.alerts.webhook)
        #expect(c.warnings.contains { $0.contains("alerts.webhook.url") } && c.warnings.contains { $0.contains("alerts.email.host") })
        let complete = try HubConfiguration.parse(json: Data(#"{"alerts": {"webhook_notifications": true, "webhook": {"url": "http://127.0.0.1:9/x"}}}"#.utf8))
        #expect(complete.alerts.webhook && complete.warnings.isEmpty)
    }

    /// --config production/development or a file decides the fleet's default profile; FLEETWATCH_CONFIG too;
    /// a file's thresholds carry limits and levels on top of its monitoring.profile.
    @Test func theConfigurationChoosesTheFleetDefault() throws {
        #expect(try HubConfiguration.load(config: nil, environment: [:]).defaultProfile == "default")
        #expect(try HubConfiguration.load(config: "production", environment: [:]).defaultProfile == "production")
        #expect(try HubConfiguration.load(config: nil, environment: ["FLEETWATCH_CONFIG": "development"]).defaultProfile == "development")
        let path = try Self.file(#"{"monitoring": {"profile": "production"}, "thresholds": {"memory_usage_mb": 300, "websocket_status.level": "INFO"}}"#)
        let c = try HubConfiguration.load(config: path, environment: [:])
        #expect(c.defaultProfile == "custom" && c.baseProfile == "production" && c.monitoring.enableEmergencyShutdown)
        #expect(c.thresholds.limits == ["memory_usage_mb": 300] && c.thresholds.levels == ["websocket_status": .info])
    }

    /// The entry the parsers' fuzz target uses: the file's bytes without a file.
    @Test func parseJSONWithoutAFile() throws {
        let c = try HubConfiguration.parse(json: Data(#"{"hub": {"port": 9000}, "monitoring": {"health_check_interval": 60}}"#.utf8),
                                           source: "inline")
        #expect(c.port == 9000 && c.monitoring.healthCheckInterval == 60 && c.profile == "inline")
        let error = try #require(throws: ConfigurationError.self) { try HubConfiguration.parse(json: Data([0xff, 0x00])) }
        #expect(error.description.hasPrefix("fuzz: "), "\(error.description)")
    }

    @Test func missingFileAndBadEnvironment() throws {
        #expect(throws: ConfigurationError.self) { try HubConfiguration.load(config: "/nonexistent.json", environment: [:]) }
        #expect(throws: ConfigurationError.self) { try HubConfiguration.load(config: nil, environment: ["FLEETWATCH_PORT": "x"]) }
        #expect(throws: ConfigurationError.self) { try HubConfiguration.load(config: nil, environment: ["FLEETWATCH_LOG_LEVEL": "loud"]) }
        #expect(throws: ConfigurationError.self) { try HubConfiguration.load(config: nil, environment: ["FLEETWATCH_METRICS_AUTH": "yes"]) }
        #expect(throws: ConfigurationError.self) { try HubConfiguration.load(config: nil, environment: ["FLEETWATCH_ALERTMANAGER_URL": "am:9093"]) }
        let on = try HubConfiguration.load(config: nil, environment: ["FLEETWATCH_ALERTMANAGER_URL": "http://am:9093", "FLEETWATCH_METRICS_AUTH": "token"])
        #expect(on.alerts.alertmanager && on.alerts.alertmanagerURL == "http://am:9093" && on.metricsAuth == .token)
        // Switched on in the file without an address: off, with a warning (the hub still starts).
        let c = try HubConfiguration.parse(json: Data(#"{"alerts": {"alertmanager_notifications": true}}"#.utf8))
        #expect(!c.alerts.alertmanager && c.warnings.contains { $0.contains("alerts.alertmanager.url") })
    }

    /// A hostile bot's names and states cannot break the Prometheus exposition: names are sanitised, label
    /// values escaped, and two names that sanitise alike give one series, not a duplicate Prometheus refuses.
    @Test func botValuesCannotBreakTheExposition() {
        var text = BotExposition.Text()
        text.add("fleetwatch_bot_" + BotExposition.sanitized("a.b:c-d/e"), "gauge", "h", bot: "evil\"bot", value: 1)
        text.add("fleetwatch_bot_" + BotExposition.sanitized("a_b_c_d_e"), "gauge", "h", bot: "evil\"bot", value: 2)
        text.add("fleetwatch_bot_s_state", "gauge", "h", bot: "b", extra: [("state", "x\"} 1\nfleetwatch_bot_up{bot=\"z\"")], value: 1)
        text.add("fleetwatch_bot_v", "gauge", "h", bot: "b", value: .infinity)
        let out = text.rendered
        #expect(out.contains(#"fleetwatch_bot_a_b_c_d_e{bot="evil\"bot"} 1"#), "\(out)")
        #expect(!out.contains("} 2"), "a second series with the same name and labels: \(out)")
        #expect(out.contains(#"state="x\"} 1\nfleetwatch_bot_up{bot=\"z\""} 1"#), "\(out)")
        #expect(out.split(separator: "\n").filter { $0.hasPrefix("fleetwatch_bot_up") }.isEmpty, "a state string injected a series: \(out)")
        #expect(out.contains("fleetwatch_bot_v{bot=\"b\"} +Inf"))
    }

    /// The file's keys are one table: nested groups are checked like sections (a typo inside `alerts.webhook`
    /// used to be ignored), a group without its required key names it, nulls count as absent, and the keys apply
    /// in the table's order whatever the file's (a built-in profile, then the file's own switch).
    @Test(arguments: [
        (#"{"alerts": {"webhook": {"url": "http://x", "secert": "s"}}}"#, #"unknown key "alerts.webhook.secert""#),
        (#"{"alerts": {"email": {"port": 25}}}"#, "alerts.email.host is missing"),
        (#"{"alerts": {"cooldowns": 5}}"#, "alerts.cooldowns must be an object"),
        (#"{"hub": {"port": 80.5}}"#, "hub.port must be a whole number"),
        (#"{"dashboard": {"allowed_origins": ["https://a", 7]}}"#, "dashboard.allowed_origins must be a list of strings"),
        (#"[1, 2]"#, "one JSON object of sections"),
        (#"{"thresholds": {"memory_usage_mb": [1]}}"#, "thresholds.memory_usage_mb must be a number"),
    ])
    func nestedKeysAndTypesAreChecked(json: String, mentions: String) throws {
        let error = try #require(throws: ConfigurationError.self) { try HubConfiguration.parse(json: Data(json.utf8), source: "f.json") }
        #expect(error.description.contains(mentions), "\(error.description)")
    }

    @Test func keysApplyInTheTablesOrderAndNullsAreAbsent() throws {
        let a = try HubConfiguration.parse(json: Data(#"{"monitoring": {"enable_emergency_shutdown": false, "profile": "production"}}"#.utf8))
        let b = try HubConfiguration.parse(json: Data(#"{"monitoring": {"profile": "production", "enable_emergency_shutdown": false}}"#.utf8))
        #expect(!a.monitoring.enableEmergencyShutdown && !b.monitoring.enableEmergencyShutdown && a.baseProfile == "production")
        let c = try HubConfiguration.parse(json: Data(#"{"monitoring": {"profile": "production"}}"#.utf8))
        #expect(c.monitoring.enableEmergencyShutdown)
        let d = try HubConfiguration.parse(json: Data(#"{"hub": {"port": null, "max_frame_bytes": 2097152}, "alerts": null}"#.utf8))
        #expect(d.port == HubConfiguration().port && d.ingest.maxFrameBytes == 2_097_152)
    }

    /// Every key of the table is documented (docs/configuration.md, or alerts.md for the channels).
    @Test func everyKeyIsDocumented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let docs = try ["docs/configuration.md", "docs/alerts.md"].map { try String(contentsOf: root.appendingPathComponent($0), encoding: .utf8) }
            .joined()
        let missing = HubConfiguration.configKeys.map(\.path).filter { path in
            let leaf = String(path.split(separator: ".").last!)
            return !docs.contains("`\(leaf)`") && !docs.contains("\"\(leaf)\"")
        }
        #expect(missing.isEmpty, "undocumented keys: \(missing)")
        #expect(HubConfiguration.configKeys.count == Set(HubConfiguration.configKeys.map(\.path)).count, "a key is in the table twice")
    }
}
