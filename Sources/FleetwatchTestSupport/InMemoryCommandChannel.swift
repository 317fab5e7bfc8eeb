import FleetwatchIngest
import FleetwatchProtocol

/// A command ledger in memory for session unit tests: hands out queued commands on connect and records
/// what the agent reports.
public actor InMemoryCommandChannel: CommandChannel {
    public private(set) var onConnect: [CommandFrame]
    public private(set) var results: [CommandResultFrame] = []
    public private(set) var declarations: [EmergencyDeclaration] = []
    /// When set, `record` and `declare` throw (a database outage).
    public var failing = false

    public init(onConnect: [CommandFrame] = []) { self.onConnect = onConnect }

    public func setFailing(_ value: Bool) { failing = value }

    public func commandsOnConnect(_ session: BotSession) async throws -> [CommandFrame] { onConnect }

    public func record(_ result: CommandResultFrame, session: BotSession) async throws {
        if failing { throw TestSupportError("ledger unavailable") }
        results.append(result)
    }

    public func declare(_ declaration: EmergencyDeclaration, session: BotSession) async throws -> CommandFrame? {
        if failing { throw TestSupportError("ledger unavailable") }
        declarations.append(declaration)
        return CommandFrame(commandID: declaration.commandID, botID: session.botName, issuedAtMs: declaration.declaredAtMs,
                            expiresAtMs: declaration.declaredAtMs + 60_000, actions: declaration.actions, reason: declaration.reason)
    }
}
