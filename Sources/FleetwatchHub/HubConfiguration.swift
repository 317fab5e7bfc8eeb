import FleetwatchAlerting
import FleetwatchIngest
import FleetwatchStorage
import Foundation
import Logging

/// Everything the hub needs to run. Every field has a default; see `load` for where values come from.
public struct HubConfiguration: Sendable {
    /// Address the HTTP/WebSocket server binds to (dashboard, API, agents).
    public var host = "127.0.0.1"
    /// Port of the HTTP/WebSocket server.
    public var port = 8000
    /// PEM certificate chain and private key: with both, the hub serves HTTPS and `wss://` only.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// PostgreSQL address; nil runs a private cluster under `dataDirectory`.
    public var databaseURL: String?
    /// A read-only server (a streaming standby) for reads that tolerate lag: history charts and the weekly
    /// report (`hub.read_database_url`, `FLEETWATCH_READ_DATABASE_URL`); nil: everything reads the primary.
    public var readDatabaseURL: String?
    /// Where the embedded cluster lives.
    public var dataDirectory = "./fleetwatch-data"
    /// Connections in the PostgreSQL pool of ingest, alerting, commands to bots and upkeep.
    public var databaseConnections = 16
    /// Connections in the operators' pool: the API, the dashboard and emergency-stop requests wait only behind each
    /// other, never behind a fleet's ingest (a reconnect storm, a backlog of batches).
    public var operatorDatabaseConnections = 4
    /// The password for a database URL without one (`FLEETWATCH_DATABASE_PASSWORD` or its `_FILE`), so the URL
    /// itself need not be secret.
    public var databasePassword: String?
    /// A superuser's (or CREATEROLE role's) database URL, for `monitor-hub database init` and `analysts add`
    /// (`FLEETWATCH_ADMIN_DATABASE_URL` or its `_FILE`; never the file, never used by `serve`).
    public var adminDatabaseURL: String?
    /// Its password, when the URL has none (`FLEETWATCH_ADMIN_DATABASE_PASSWORD` or its `_FILE`).
    public var adminDatabasePassword: String?
    /// How long the hub waits at start for PostgreSQL to accept a connection (`hub.database_start_timeout`);
    /// a wrong password, database or TLS setting fails at once.
    public var databaseStartTimeout: Duration = .seconds(30)
    /// PostgreSQL cancels any statement of the running hub that takes longer (`hub.statement_timeout`; 0: never);
    /// an API request whose query is cancelled gets 503. Migrations are not limited.
    public var databaseStatementTimeout: Duration = .seconds(30)
    /// How PostgreSQL compresses large batches as they arrive (`hub.toast_compression`): lz4 where the server has
    /// it; merged minutes are pglz whatever this says.
    public var toastCompression = ToastCompression.auto
    /// While PostgreSQL is unreachable, bot tokens, API tokens and dashboard sessions this replica verified within
    /// this long are still accepted (`hub.outage_credentials_max_age`; 0: none): reconnecting agents, and the
    /// break-glass emergency stop.
    public var outageCredentialMaxAge: Duration = .seconds(900)
    /// The address operators reach the dashboard at (`hub.public_url`, `FLEETWATCH_PUBLIC_URL`), for links in
    /// alerts (Alertmanager's `dashboard` annotation); nil: alerts carry no link.
    public var publicURL: String?
    /// Who may read `/metrics` and `/metrics/bots` (`hub.metrics_auth`): `none` (anyone who reaches the port) or
    /// `token` (an API token of any role, `Authorization: Bearer …`).
    public var metricsAuth = MetricsAuth.none
    /// Let unknown bots register themselves with the token they present (demo only).
    public var autoRegister = false
    /// Serve the dashboard.
    public var dashboardEnabled = true
    /// Sign-in, sessions and the live WebSocket of the dashboard.
    public var dashboard = DashboardSettings()
    public var logLevel: Logger.Level = .info
    /// `text` (default) or `json`: one JSON object per line for log shippers (`hub.log_format`,
    /// `FLEETWATCH_LOG_FORMAT`, `--log-format`).
    public var logFormat = LogFormat.text

    public enum LogFormat: String, Sendable, CaseIterable {
        case text, json
    }
    /// The profile this configuration came from: `default`, `production`, `development` or a file path.
    public var profile = "default"
    /// The threshold profile every bot without its own follows, set at start: `default`, `production`,
    /// `development`, or `custom` for a configuration file.
    public var defaultProfile: String {
        ThresholdProfile.builtIn[profile] != nil ? profile : "custom"
    }
    /// Monitoring settings of the reference system, used by the alerting and emergency features.
    public var monitoring = MonitoringSettings()
    /// Ingest limits and timings.
    public var ingest = IngestConfiguration()
    /// Alert channels, cooldowns and the no-data rule.
    public var alerts = AlertSettings()
    /// Thresholds from the configuration file (the reference `thresholds` section: limits, hysteresis and
    /// `rule.level` keys), stored as the profile `custom` on top of `baseProfile`.
    public var thresholds = ThresholdSettings()
    /// The built-in profile a configuration file's thresholds start from (`monitoring.profile`).
    public var baseProfile = "default"
    /// What the configuration turned off because it was incomplete (a channel switched on without its
    /// settings), for the start-up log.
    public var warnings: [String] = []
    /// Emergency-stop delivery: frame validity, acknowledgement timeout, polling.
    public var emergency = EmergencyConfiguration()
    /// Retention of raw samples and rollups, and the rollup cadence.
    public var retention = RetentionSettings()
    /// Limits of the HTTP server every client reaches (agents, API, dashboard).
    public var http = HTTPLimits()
    /// Days the audit log keeps its rows (default 400: more than a year, for a yearly review).
    public var auditRetentionDays = 400
    /// How often the hub gives the memory its allocator holds free back to the system (`MemoryTrimmer`);
    /// zero: never.
    public var memoryTrimInterval: Duration = .seconds(30)

    public init() {}
}

/// Limits of the HTTP listener, so that no client (authenticated or not) can hold the hub's resources.
public struct HTTPLimits: Sendable, Equatable {
    /// A keep-alive HTTP connection with no request in progress is closed after this long (WebSockets are
    /// governed by heartbeats and pings instead).
    public var idleTimeout: Duration = .seconds(60)
    /// Open connections of all kinds; past it the hub accepts no new connection (they wait in the listen
    /// backlog) until one ends.
    public var maxConnections = 10_000
    /// Largest request head (request line and headers), in bytes; a larger one gets 431.
    public var maxHeaderBytes = 16 * 1024
    /// How long a new connection may take to send its first request head (408 after).
    public var headTimeout: Duration = .seconds(10)
    /// Open connections from one client address; more are closed at once. Raise it when a proxy or a NAT puts
    /// many bots behind one address.
    public var maxConnectionsPerAddress = 1_000
    /// Reverse proxies and balancers whose `X-Forwarded-For`/`X-Forwarded-Proto` are honoured
    /// (`hub.trusted_proxies`); their own connections are not limited per address.
    public var trustedProxies = TrustedProxies()
    public init() {}
}

/// Who may read the Prometheus expositions.
public enum MetricsAuth: String, Sendable, CaseIterable {
    case none, token
}

/// The reference system's `alerts` section, with the channels' settings.
public struct AlertSettings: Sendable {
    public var enabled = true
    public var console = true
    public var log = true
    public var dashboard = true
    public var email = false
    public var webhook = false
    public var webhookURL: String?
    public var webhookSecret: String?
    public var webhookTimeout: Duration = .seconds(5)
    public var webhookMinimumLevel = "WARNING"
    /// `fleetwatch` (default), `slack`, `discord` or `telegram` (`alerts.webhook.format`).
    public var webhookFormat = "fleetwatch"
    /// Telegram's chat id for the `telegram` format (`alerts.webhook.chat_id`).
    public var webhookChatID: String?
    public var consoleMinimumLevel = "INFO"
    /// Prometheus Alertmanager (`alerts.alertmanager_notifications`, `alerts.alertmanager.*`,
    /// `FLEETWATCH_ALERTMANAGER_URL`).
    public var alertmanager = false
    public var alertmanagerURL: String?
    public var alertmanagerMinimumLevel = "INFO"
    public var alertmanagerTimeout: Duration = .seconds(5)
    /// Firing alerts are posted again this often (Alertmanager resolves an alert it does not hear about).
    public var alertmanagerResendInterval: Duration = .seconds(60)
    public var emailHost: String?
    public var emailPort = 587
    /// `plain`, `starttls` or `tls`.
    public var emailSecurity = "starttls"
    public var emailUsername: String?
    public var emailPassword: String?
    public var emailFrom = "fleetwatch@localhost"
    public var emailTo: [String] = []
    public var emailVerifyCertificate = true
    public var emailMinimumLevel = "CRITICAL"
    /// Repeat intervals, seconds.
    public var cooldownInfo: Double = 300
    public var cooldownWarning: Double = 600
    public var cooldownCritical: Double = 1800
    /// The reference system's "log alerts" as a file: one JSON line per alert event (nil: none).
    public var logFile: String?
    /// Size at which the log file is rotated, and how many rotated files are kept.
    public var logFileMaxBytes = 10 << 20
    public var logFileKeep = 5
    /// A bot silent this long raises "bot silent" (CRITICAL).
    public var noDataSeconds: Double = 120
    public init() {}
}

/// The dashboard's sign-in and live updates (the `dashboard` section).
public struct DashboardSettings: Sendable {
    /// The operator created on the first start when no user exists.
    public var adminUser = "admin"
    /// Its password; nil generates one and prints it once on the console (never to the log).
    public var adminPassword: String?
    /// Where a generated first admin password goes when standard output is not a terminal (default
    /// `<data dir>/initial-admin-password`).
    public var adminPasswordFile: String?
    /// Origins besides the hub's own address allowed to open `/ws` (e.g. `https://fleet.example.com`
    /// behind a proxy).
    public var allowedOrigins: [String] = []
    /// A session ends after this long without a request (and after 7 days in any case).
    public var sessionIdleTimeout: Duration = .seconds(8 * 3600)
    /// Sign-in attempts per minute per address and per user name before 429.
    public var loginAttemptsPerMinute = 10
    /// Chart.js, from Debian's libjs-chart.js; served at `/assets/chart.min.js`.
    public var chartJSPath = "/usr/share/javascript/chart.js/chart.min.js"
    /// How often a live WebSocket gets the changes since its last message.
    public var updateInterval: Duration = .milliseconds(250)
    /// How often a live WebSocket gets a `ping`.
    public var pingInterval: Duration = .seconds(15)
    /// How often an open live WebSocket checks that its session or API token is still valid (expired,
    /// revoked, user disabled: closed with 4001). Sign-out closes at once on every replica.
    public var sessionCheckInterval: Duration = .seconds(30)
    public init() {}
}

/// The reference system's `monitoring` section.
public struct MonitoringSettings: Sendable, Equatable {
    /// Seconds between health checks (the reference default is 300).
    public var healthCheckInterval: Double = 300
    /// Whether rules may stop a bot automatically.
    public var enableEmergencyShutdown = false
    public init() {}
}

/// A configuration value that cannot be used, with the place it came from.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
