import FleetwatchProtocol
/// Everything an agent needs to know. Every field but the hub address, bot id and token has a default.
public struct AgentConfiguration: Sendable {
    /// The hub's agent endpoint, e.g. `ws://127.0.0.1:8000/agent/v1` (or `wss://` for TLS).
    public var hubURL: String
    /// The bot's id at the hub.
    public var botID: String
    /// The bot's secret token, issued by `monitor-hub bots add`.
    public var token: String
    /// How often metrics are snapshotted and sent.
    public var flushInterval: Duration = .seconds(1)
    /// Buffer sizes: samples held while the hub is away, samples per batch.
    public var buffer = BatchBuffer.Configuration()
    /// Reconnect pacing.
    public var backoff = Backoff()
    /// Most batches sent and not yet acknowledged.
    public var sendWindow = 64
    /// While a batch awaits the hub's ack, a flush's samples are not sealed into a batch of their own: they wait
    /// and join the next one, sealed as soon as the ack comes back, or at the first flush after waiting this
    /// long. A hub that keeps up acks within milliseconds, so each flush still goes at once; a hub that falls
    /// behind gets fewer, larger batches instead of a growing queue of small ones; a hub that stores nothing
    /// (its database is down: it evaluates batches but acks none) still gets fresh samples every this long.
    /// `nil`: one batch per flush whatever the hub does. (With a spool, every flush is sealed regardless.)
    /// A negative delay counts as zero: no coalescing.
    public var maxCoalesceDelay: Duration? = defaultMaxCoalesceDelay
    /// `maxCoalesceDelay` unless set otherwise.
    public static let defaultMaxCoalesceDelay: Duration = .seconds(5)
    /// A directory for the on-disk spool; nil keeps unacknowledged batches in memory only.
    public var spoolDirectory: String?
    /// Largest size of the spool directory.
    public var spoolMaxBytes = 64 << 20
    /// Poll the bot's own memory, CPU and log file size.
    public var processCollector = true
    /// The log file whose size `log_file_size_mb` reports.
    public var logFilePath: String?
    /// How long a collector may take at each flush.
    public var collectorTimeout: Duration = .milliseconds(500)
    /// Duration observations kept per metric between two flushes; more are dropped and counted.
    public var durationCapacity = 4096
    /// An unchanged string state is reported again after this long.
    public var stateRepeatInterval: Duration = .seconds(60)
    /// A connection attempt whose TCP connect and WebSocket upgrade take longer than this is given up and
    /// retried (a hub behind a network that silently drops packets would otherwise hold the agent forever).
    public var connectTimeout: Duration = .seconds(10)
    /// Heartbeat interval until the hub's welcome says otherwise.
    public var heartbeatInterval: Duration = .seconds(5)
    /// Largest frame accepted from the hub.
    public var maxFrameBytes = 1 << 20
    /// Reported to the hub's bot registry.
    public var agentVersion = AgentConfiguration.libraryVersion
    /// For `wss://` hubs whose certificate is not signed by a system-trusted authority: a PEM file with the
    /// certificate(s) to trust (the hub's own, or its private CA). Nil: the system's trust store.
    public var trustedCertificatesPath: String?
    /// The newest protocol version offered in the hello (1–3; default the newest). Lower it only to talk to a
    /// hub that misbehaves with a newer one: a hub that does not speak the offered version answers 4001 and the
    /// agent offers the next lower one by itself.
    public var protocolVersion: UInt16 = WireProtocol.version

    /// This library's version.
    public static let libraryVersion = "fleetwatch-agent-swift/0.1.0"

    public init(hubURL: String, botID: String, token: String) {
        self.hubURL = hubURL
        self.botID = botID
        self.token = token
    }
}

/// What the agent is doing, for the bot's own logs and health checks.
public struct AgentStatus: Sendable, Equatable {
    /// Connected to a hub and streaming.
    public var connected: Bool
    /// Samples waiting (pending and unacknowledged).
    public var bufferedSamples: Int
    /// Batches sent or waiting, not yet acknowledged.
    public var unackedBatches: Int
    /// Samples dropped for lack of buffer space since start.
    public var droppedSamples: Int64
    /// Batches the hub acknowledged since start.
    public var ackedBatches: Int64
    /// The hub's close code last time, if any.
    public var lastCloseCode: UInt16?
    /// The last connection error, if any.
    public var lastError: String?
    /// The bot is in emergency mode (an emergency stop latched it; an operator's resume clears it).
    public var emergencyMode: Bool = false
    /// Samples the hub acknowledged but did not store (bad value or timestamp, metric name over the bot's
    /// limit), since start. Reported by hubs that speak protocol v2.
    public var refusedByHub: Int64 = 0
    /// The protocol version of the current (or last) connection.
    public var protocolVersion: UInt16 = WireProtocol.version
}
