import NIOCore

/// Hub → agent: run the emergency steps named in `actions` (layout fixed now, used by the emergency-stop feature).
public struct CommandFrame: Equatable, Sendable {
    /// Emergency steps, as bits.
    public struct Actions: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let stopTrading = Actions(rawValue: 1 << 0)
        public static let cancelOrders = Actions(rawValue: 1 << 1)
        public static let liquidate = Actions(rawValue: 1 << 2)
        public static let latchEmergency = Actions(rawValue: 1 << 3)
        public static let resume = Actions(rawValue: 1 << 4)
    }
    /// The command's id in the hub's ledger (16 bytes on the wire, a UUID).
    public var commandID: CommandID
    /// The bot the command is bound to; an agent refuses a command for another bot.
    public var botID: String
    public var issuedAtMs: UInt64
    /// After this time the agent refuses the command.
    public var expiresAtMs: UInt64
    public var actions: Actions
    public var reason: String

    public init(commandID: CommandID, botID: String, issuedAtMs: UInt64, expiresAtMs: UInt64,
                actions: Actions, reason: String) {
        self.commandID = commandID
        self.botID = botID
        self.issuedAtMs = issuedAtMs
        self.expiresAtMs = expiresAtMs
        self.actions = actions
        self.reason = reason
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeCommandID(commandID)
        buffer.writeInteger(issuedAtMs, endianness: .little)
        buffer.writeInteger(expiresAtMs, endianness: .little)
        buffer.writeInteger(actions.rawValue)
        buffer.writeWireString(botID)
        buffer.writeWireString(reason)
    }

    init(body buffer: inout ByteBuffer) throws {
        commandID = try buffer.readCommandID()
        issuedAtMs = try buffer.readLE(UInt64.self, "issued at")
        expiresAtMs = try buffer.readLE(UInt64.self, "expires at")
        actions = Actions(rawValue: try buffer.readLE(UInt8.self, "actions"))
        botID = try buffer.readWireString(maxBytes: WireProtocol.maxBotIDBytes, "bot id")
        reason = try buffer.readWireString(maxBytes: 1024, "reason")
    }
}

/// Agent → hub: progress of one command, one frame per step as it finishes.
public struct CommandResultFrame: Equatable, Sendable {
    /// Where the command stands.
    public enum Status: UInt8, Sendable {
        case received = 0, succeeded = 1, failed = 2, skipped = 3, completed = 4, refused = 5
    }
    public var commandID: CommandID
    /// The step this result is about (an `Actions` bit), 0 for the command as a whole.
    public var step: UInt8
    public var status: Status
    public var atMs: UInt64
    public var detail: String

    public init(commandID: CommandID, step: UInt8, status: Status, atMs: UInt64, detail: String) {
        self.commandID = commandID
        self.step = step
        self.status = status
        self.atMs = atMs
        self.detail = detail
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeCommandID(commandID)
        buffer.writeInteger(step)
        buffer.writeInteger(status.rawValue)
        buffer.writeInteger(atMs, endianness: .little)
        buffer.writeWireString(detail)
    }

    init(body buffer: inout ByteBuffer) throws {
        commandID = try buffer.readCommandID()
        step = try buffer.readLE(UInt8.self, "step")
        let raw = try buffer.readLE(UInt8.self, "status")
        guard let status = Status(rawValue: raw) else { throw WireError(.invalidField, "command status \(raw) is unknown") }
        self.status = status
        atMs = try buffer.readLE(UInt64.self, "time")
        detail = try buffer.readWireString(maxBytes: 1024, "detail")
    }
}
