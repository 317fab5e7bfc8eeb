import FleetwatchProtocol

/// Where a connection's emergency commands come from and where the agent's reports go
/// (the PostgreSQL command ledger in the hub, a double in unit tests).
public protocol CommandChannel: Sendable {
    /// Commands to send right after the welcome: every unfinished command and the latched emergency.
    func commandsOnConnect(_ session: BotSession) async throws -> [CommandFrame]
    /// Records one step result the agent reported.
    func record(_ result: CommandResultFrame, session: BotSession) async throws
    /// Records an emergency the bot declared; returns the confirmation to send back (a command frame with
    /// the same id, after which the agent stops re-sending the declaration), or nil when the connection no
    /// longer holds the bot's lease (nothing recorded, nothing to confirm: the connection is closed with 4007).
    func declare(_ declaration: EmergencyDeclaration, session: BotSession) async throws -> CommandFrame?
}
