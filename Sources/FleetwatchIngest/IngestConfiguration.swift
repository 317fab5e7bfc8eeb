import FleetwatchProtocol

/// Ingest limits and timings. Every field has a default.
public struct IngestConfiguration: Sendable {
    /// This replica's name, recorded with each lease and batch.
    public var hubID: String = "hub"
    /// Largest WebSocket message accepted; larger closes with 4003 (the WebSocket layer answers 1009 first
    /// for a single frame beyond it).
    public var maxFrameBytes: Int = 1 << 20
    /// Size and count limits applied before and while inflating a batch.
    public var limits = BatchLimits()
    /// Which samples are refused one by one.
    public var validator = BatchValidator()
    /// Heartbeat interval announced in the welcome; silence for two intervals closes the connection.
    public var heartbeatInterval: Duration = .seconds(5)
    /// How long a new connection may take to send its hello.
    public var helloTimeout: Duration = .seconds(10)

    public init() {}
}
