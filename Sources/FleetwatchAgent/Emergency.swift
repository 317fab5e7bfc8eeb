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
    /// An operator resumed the bot from the hub: leave emergency mode (trading may start again).
    func resume() async throws -> String
}

extension EmergencyHandler {
    public var liquidationEnabled: Bool { false }
    public func liquidatePositions() async throws -> String { "liquidation not implemented by this bot" }
    public func resume() async throws -> String { "emergency mode cleared" }
}

/// Runs the steps of one command on a handler and reports each result as it finishes.
public enum EmergencyRunner {
    public static func run(_ command: CommandFrame, steps: [CommandFrame.Actions], handler: any EmergencyHandler,
                           liquidationSkipped: Bool, reportReceived: Bool = true, clock: @Sendable () -> UInt64,
                           report: @Sendable (CommandResultFrame) async -> Void) async {
        let id = command.commandID
        if reportReceived {
            await report(CommandResultFrame(commandID: id, step: 0, status: .received, atMs: clock(), detail: command.reason))
        }
        var failed = false
        for step in steps {
            do {
                let detail: String
                switch step {
                case .stopTrading: detail = try await handler.stopTrading()
                case .cancelOrders: detail = try await handler.cancelOpenOrders()
                case .liquidate: detail = try await handler.liquidatePositions()
                case .resume: detail = try await handler.resume()
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
