import NIOCore

/// The agent's first frame: who it is and where its sequence stands.
public struct Hello: Equatable, Sendable {
    /// Protocol version the agent speaks.
    public var protocolVersion: UInt16
    /// Bot id, as registered at the hub.
    public var botID: String
    /// The bot's secret token.
    public var token: String
    /// The agent library's version, for the bot registry.
    public var agentVersion: String
    /// Identifies this run of the bot; sequences restart at 1 in each epoch.
    public var bootEpoch: UInt64
    /// Highest sequence of this epoch the agent has seen acknowledged (0: none).
    public var lastAckedSequence: UInt64

    public init(protocolVersion: UInt16 = WireProtocol.version, botID: String, token: String,
                agentVersion: String, bootEpoch: UInt64, lastAckedSequence: UInt64) {
        self.protocolVersion = protocolVersion
        self.botID = botID
        self.token = token
        self.agentVersion = agentVersion
        self.bootEpoch = bootEpoch
        self.lastAckedSequence = lastAckedSequence
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeInteger(protocolVersion, endianness: .little)
        buffer.writeInteger(bootEpoch, endianness: .little)
        buffer.writeInteger(lastAckedSequence, endianness: .little)
        buffer.writeWireString(botID)
        buffer.writeWireString(token)
        buffer.writeWireString(agentVersion)
    }

    init(body buffer: inout ByteBuffer) throws {
        protocolVersion = try buffer.readLE(UInt16.self, "protocol version")
        guard WireProtocol.supportedVersions.contains(protocolVersion) else {
            throw WireError(.unsupportedVersion,
                            "agent speaks protocol \(protocolVersion), this side speaks \(WireProtocol.supportedVersions)")
        }
        bootEpoch = try buffer.readLE(UInt64.self, "boot epoch")
        lastAckedSequence = try buffer.readLE(UInt64.self, "last acked sequence")
        botID = try buffer.readWireString(maxBytes: WireProtocol.maxBotIDBytes, "bot id")
        guard WireProtocol.isValidName(botID, maxBytes: WireProtocol.maxBotIDBytes) else {
            throw WireError(.invalidField, "bot id must be 1–128 characters of A–Z a–z 0–9 _ . : - /")
        }
        token = try buffer.readWireString(maxBytes: WireProtocol.maxTokenBytes, "token")
        agentVersion = try buffer.readWireString(maxBytes: WireProtocol.maxAgentVersionBytes, "agent version")
    }
}
