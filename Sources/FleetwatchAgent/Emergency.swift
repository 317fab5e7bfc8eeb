import FleetwatchProtocol

/// What a bot does when the hub orders an emergency stop. Steps run in this order: stop trading, cancel open
/// orders, liquidate positions (only when the command asks for it and `liquidationEnabled` is true), set
/// emergency mode. Each returns a short description of what it did, or throws.
public protocol EmergencyHandler: Sendable {
    /// Whether this bot may liquidate positions when a command asks for it.
    var liquidationEnabled: Bool { get }
    func stopTrading() async throws -> String
    func cancelOpenOrders() async throws -> String
    func liquidatePositions() async throws -> String
    func setEmergencyMode() async throws -> String
}

/// Decides what to do with a command frame. Pure: the agent's own bot id, the time and the ids already
/// handled come in. A command id is executed at most once, however often it is delivered.
public struct CommandGate: Sendable {
    public enum Decision: Equatable, Sendable {
        /// Run these steps, in order.
        case execute([CommandFrame.Actions])
        /// Already executed (or executing): report again, do nothing.
        case alreadyHandled
        /// Refuse, with the reason reported to the hub.
        case refuse(String)
    }

    public let botID: String
    /// Ids handled, oldest first, at most `memory` of them.
    public private(set) var handled: [[UInt8]] = []
    let memory: Int

    public init(botID: String, handled: [[UInt8]] = [], memory: Int = 1024) {
        self.botID = botID
        self.handled = Array(handled.suffix(memory))
        self.memory = memory
    }

    public mutating func decide(_ command: CommandFrame, nowMs: UInt64, liquidationEnabled: Bool) -> Decision {
        if handled.contains(command.commandID) { return .alreadyHandled }
        guard command.botID == botID else { return .refuse("command is bound to bot \(command.botID), this is \(botID)") }
        guard nowMs <= command.expiresAtMs else { return .refuse("command expired at \(command.expiresAtMs), now \(nowMs)") }
        handled.append(command.commandID)
        if handled.count > memory { handled.removeFirst(handled.count - memory) }
        var steps: [CommandFrame.Actions] = []
        for step in [CommandFrame.Actions.stopTrading, .cancelOrders, .liquidate, .latchEmergency] where command.actions.contains(step) {
            if step == .liquidate && !liquidationEnabled { continue }
            steps.append(step)
        }
        return .execute(steps)
    }
}

/// Runs the steps of one command on a handler and reports each result as it finishes.
public enum EmergencyRunner {
    public static func run(_ command: CommandFrame, steps: [CommandFrame.Actions], handler: any EmergencyHandler,
                           liquidationSkipped: Bool, clock: @Sendable () -> UInt64,
                           report: @Sendable (CommandResultFrame) async -> Void) async {
        let id = command.commandID
        await report(CommandResultFrame(commandID: id, step: 0, status: .received, atMs: clock(), detail: command.reason))
        var failed = false
        for step in steps {
            do {
                let detail: String
                switch step {
                case .stopTrading: detail = try await handler.stopTrading()
                case .cancelOrders: detail = try await handler.cancelOpenOrders()
                case .liquidate: detail = try await handler.liquidatePositions()
                default: detail = try await handler.setEmergencyMode()
                }
                await report(CommandResultFrame(commandID: id, step: step.rawValue, status: .succeeded, atMs: clock(), detail: detail))
            } catch {
                failed = true
                await report(CommandResultFrame(commandID: id, step: step.rawValue, status: .failed, atMs: clock(), detail: "\(error)"))
            }
        }
        if liquidationSkipped {
            await report(CommandResultFrame(commandID: id, step: CommandFrame.Actions.liquidate.rawValue, status: .skipped,
                                            atMs: clock(), detail: "liquidation is not enabled for this bot"))
        }
        await report(CommandResultFrame(commandID: id, step: 0, status: failed ? .failed : .completed, atMs: clock(),
                                        detail: failed ? "one or more steps failed" : "all steps done"))
    }
}
