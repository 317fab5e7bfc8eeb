import FleetwatchProtocol
import Foundation

/// The agent connections this replica holds, by bot: how the command dispatcher reaches a bot's socket.
actor LiveConnections {
    struct Entry {
        let connectionID: UUID
        let botID: Int32
        let push: @Sendable (Frame) -> Void
        let close: @Sendable (CloseCode, String) -> Void
    }

    private var byBot: [String: Entry] = [:]

    /// A connection authenticated as `bot`; frames given to `push` are written to its socket in order.
    /// `close` ends the connection after the message being handled (graceful shutdown).
    func add(bot: String, botID: Int32, connectionID: UUID, push: @escaping @Sendable (Frame) -> Void,
             close: @escaping @Sendable (CloseCode, String) -> Void) {
        byBot[bot] = Entry(connectionID: connectionID, botID: botID, push: push, close: close)
    }

    /// Asks every connection to finish the message in hand (store, ack) and close with 1001 (going away).
    func closeAll() -> Int {
        byBot.values.forEach { $0.close(.goingAway, "hub shutting down") }
        return byBot.count
    }

    /// Closes `bot`'s connection here, if any (its token was revoked or rotated): 4002, so the agent retries
    /// slowly and is refused until it has a valid token.
    @discardableResult
    func revoke(bot: String) -> Bool {
        guard let entry = byBot[bot] else { return false }
        entry.close(.authenticationFailed, "token revoked or rotated")
        return true
    }

    /// The connection ended (only removes it if it is still the bot's current one).
    func remove(bot: String, connectionID: UUID) {
        if byBot[bot]?.connectionID == connectionID { byBot[bot] = nil }
    }

    /// The bots connected here: row id and the connection holding each.
    var leases: [(botID: Int32, connectionID: UUID)] { byBot.values.map { ($0.botID, $0.connectionID) } }

    var count: Int { byBot.count }

    /// Sends `frame` to `bot` if it is connected here; returns whether it was.
    @discardableResult
    func send(_ frame: Frame, to bot: String) -> Bool {
        guard let entry = byBot[bot] else { return false }
        entry.push(frame)
        return true
    }
}
