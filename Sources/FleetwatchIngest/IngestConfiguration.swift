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
    /// Distinct metric names one bot may use (unless `monitor-hub bots metric-names` gave it its own limit);
    /// samples of further names are refused, the batch is stored without them.
    public var maxMetricNamesPerBot = 1_000
    /// Distinct metric names in the whole fleet.
    public var maxMetricNames = 50_000
    /// Bytes of received messages one connection may have waiting to be handled; past it the hub stops
    /// reading that connection until it catches up (the bot's TCP send buffer fills, other bots carry on).
    /// One message is always let in, so the bound is this plus one message (at most 2 × `maxFrameBytes`).
    public var maxPendingBytes = 4 << 20
    /// Bytes of received messages all connections of this replica may have waiting, together; past it every
    /// connection's reader stops after its current message until handling catches up (the agents keep their
    /// batches and send them when read again). Bounds the hub's memory when the fleet sends faster than it
    /// stores.
    public var maxPendingBytesTotal = 256 << 20
    /// Stored batches this replica may have waiting for alert evaluation; past it every connection's reader
    /// stops after its current message until evaluation catches up, as for `maxPendingBytesTotal`. Evaluation
    /// never delays a batch's acknowledgement; this bounds the memory of the batches it has yet to read when
    /// it falls behind (about 2 KB each at 15 metrics).
    public var maxUnevaluatedBatches = 10_000
    /// Bytes a second one connection may send (a batch counts its declared inflated size, or 64 bytes a sample, if larger), after a burst of
    /// `max(maxPendingBytes, limits.maxPayloadBytes)`; a faster bot is read more slowly, so no bot takes more
    /// than its share of the hub. A bot flushing 50 metrics a second costs about 3 KB/s; the default lets one
    /// bot catch up on a spooled backlog at about 4,000 samples a second.
    public var maxBytesPerSecond = 256 << 10

    public init() {}
}
