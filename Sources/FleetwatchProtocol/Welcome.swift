import NIOCore

/// The hub's answer to a valid hello: what it already stored and the limits the agent must respect.
public struct Welcome: Equatable, Sendable {
    /// The protocol version of this connection: the hello's, which the hub speaks (1 or 2).
    public var protocolVersion: UInt16
    /// The epoch of the hello, echoed.
    public var bootEpoch: UInt64
    /// Highest sequence of that epoch already stored (0: none). The agent may drop batches up to it.
    public var storedSequence: UInt64
    /// How often each side sends a heartbeat, in milliseconds.
    public var heartbeatIntervalMs: UInt32
    /// Largest frame the hub accepts, in bytes.
    public var maxFrameBytes: UInt32
    /// Largest inflated batch payload the hub accepts, in bytes.
    public var maxPayloadBytes: UInt32
    /// Most samples the hub accepts in one batch.
    public var maxSamplesPerBatch: UInt32

    public init(protocolVersion: UInt16 = WireProtocol.version, bootEpoch: UInt64, storedSequence: UInt64,
                heartbeatIntervalMs: UInt32, maxFrameBytes: UInt32, maxPayloadBytes: UInt32,
                maxSamplesPerBatch: UInt32) {
        self.protocolVersion = protocolVersion
        self.bootEpoch = bootEpoch
        self.storedSequence = storedSequence
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.maxFrameBytes = maxFrameBytes
        self.maxPayloadBytes = maxPayloadBytes
        self.maxSamplesPerBatch = maxSamplesPerBatch
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeInteger(protocolVersion, endianness: .little)
        buffer.writeInteger(bootEpoch, endianness: .little)
        buffer.writeInteger(storedSequence, endianness: .little)
        buffer.writeInteger(heartbeatIntervalMs, endianness: .little)
        buffer.writeInteger(maxFrameBytes, endianness: .little)
        buffer.writeInteger(maxPayloadBytes, endianness: .little)
        buffer.writeInteger(maxSamplesPerBatch, endianness: .little)
    }

    init(body buffer: inout ByteBuffer) throws {
        protocolVersion = try buffer.readLE(UInt16.self, "protocol version")
        guard WireProtocol.supportedVersions.contains(protocolVersion) else {
            throw WireError(.unsupportedVersion,
                            "hub speaks protocol \(protocolVersion), this agent speaks \(WireProtocol.supportedVersions)")
        }
        bootEpoch = try buffer.readLE(UInt64.self, "boot epoch")
        storedSequence = try buffer.readLE(UInt64.self, "stored sequence")
        heartbeatIntervalMs = try buffer.readLE(UInt32.self, "heartbeat interval")
        maxFrameBytes = try buffer.readLE(UInt32.self, "max frame bytes")
        maxPayloadBytes = try buffer.readLE(UInt32.self, "max payload bytes")
        maxSamplesPerBatch = try buffer.readLE(UInt32.self, "max samples per batch")
    }
}
