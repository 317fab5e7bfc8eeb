import NIOCore

/// Agent → hub: the bot declared an emergency itself and ran these steps. The hub records it in the
/// command ledger (origin "bot", latched) and answers with a command frame of the same id; the agent
/// sends the declaration again on every connection until that answer arrives.
public struct EmergencyDeclaration: Equatable, Sendable {
    /// Chosen by the agent (16 bytes on the wire, a UUID); the ledger's command id.
    public var commandID: CommandID
    public var declaredAtMs: UInt64
    public var actions: CommandFrame.Actions
    public var reason: String

    public init(commandID: CommandID, declaredAtMs: UInt64, actions: CommandFrame.Actions, reason: String) {
        self.commandID = commandID
        self.declaredAtMs = declaredAtMs
        self.actions = actions
        self.reason = reason
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeCommandID(commandID)
        buffer.writeInteger(declaredAtMs, endianness: .little)
        buffer.writeInteger(actions.rawValue)
        buffer.writeWireString(reason)
    }

    init(body buffer: inout ByteBuffer) throws {
        commandID = try buffer.readCommandID()
        declaredAtMs = try buffer.readLE(UInt64.self, "declared at")
        actions = CommandFrame.Actions(rawValue: try buffer.readLE(UInt8.self, "actions"))
        reason = try buffer.readWireString(maxBytes: 1024, "reason")
    }
}

extension CommandFrame.Actions {
    /// The ledger's name of a step (`command` for 0, the command as a whole).
    public static func stepName(_ bit: UInt8) -> String? {
        switch bit {
        case 0: return "command"
        case 1: return "stop_trading"
        case 2: return "cancel_orders"
        case 4: return "liquidate"
        case 8: return "latch_emergency"
        case 16: return "resume"
        default: return nil
        }
    }

    /// The four emergency steps, in the order they run.
    public static let emergencyStop: CommandFrame.Actions = [.stopTrading, .cancelOrders, .latchEmergency]
}

extension CommandResultFrame.Status {
    /// The ledger's name of a status.
    public var name: String {
        switch self {
        case .received: return "received"
        case .succeeded: return "succeeded"
        case .failed: return "failed"
        case .skipped: return "skipped"
        case .completed: return "completed"
        case .refused: return "refused"
        }
    }

    /// Whether this status ends the command.
    public var isFinal: Bool { self == .completed || self == .failed || self == .refused }
}
