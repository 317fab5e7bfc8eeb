import FleetwatchProtocol
import Foundation

/// The agent connections this replica holds, by bot: how the command dispatcher reaches a bot's socket, and
/// how a replaced, revoked or shut-down connection is ended. A bot may briefly have more than one connection
/// here (a new one authenticated before the old one noticed); the newest is the one that holds the lease,
/// and the others are closed as soon as the lease moves (`replaced`). Lease moves are numbered (sequence
/// `lease_moves`, `bots.lease_order`), so a notification delivered late does not close the connection of a later
/// move.
actor LiveConnections {
    struct Entry {
        let connectionID: UUID
        let botID: Int32
        /// The number of the lease move that gave it the bot; nil: unnumbered (provisional, in-memory store).
        var leaseOrder: Int64?
        /// When it registered here (after its lease was taken in PostgreSQL).
        var registeredAt = ContinuousClock.now
        let push: @Sendable (Frame) -> Void
        let close: @Sendable (CloseCode, String) -> Void

        /// The same connection, counting as earlier than any numbered move.
        var unnumbered: Entry {
            var entry = self
            entry.leaseOrder = nil
            return entry
        }
    }

    /// Each bot's connections here, oldest first.
    private var byBot: [String: [Entry]] = [:]
    /// When each bot's token was last revoked or rotated (the last minute only): a connection whose hello was
    /// checked before then, but that registers after, is closed at once.
    private var revokedAt: [String: ContinuousClock.Instant] = [:]

    /// A connection authenticated as `bot` by a check that started at `checkedAt`, holding the lease move
    /// numbered `leaseOrder`; frames given to `push` are written to its socket in order. `close` ends the
    /// connection after the message being handled. A connection whose lease a later move (already heard of) took is
    /// closed at once (4007).
    func add(bot: String, botID: Int32, connectionID: UUID, leaseOrder: Int64? = nil, checkedAt: ContinuousClock.Instant,
             push: @escaping @Sendable (Frame) -> Void, close: @escaping @Sendable (CloseCode, String) -> Void) {
        if let revoked = revokedAt[bot], revoked >= checkedAt {
            close(.authenticationFailed, "token revoked or rotated")
            return
        }
        if let leaseOrder, let newest = newestMove[bot], newest > leaseOrder {
            close(.replaced, "another connection took over bot \(bot)")
            return
        }
        byBot[bot, default: []].append(Entry(connectionID: connectionID, botID: botID, leaseOrder: leaseOrder, push: push, close: close))
    }

    /// Asks every connection to finish the message in hand (store, ack) and close with 1001 (going away).
    func closeAll() -> Int {
        let all = byBot.values.flatMap { $0 }
        all.forEach { $0.close(.goingAway, "hub shutting down") }
        return all.count
    }

    /// Closes every connection of `bot` here (its token was revoked or rotated): 4002, so the agent retries
    /// slowly and is refused until it has a valid token.
    @discardableResult
    func revoke(bot: String) -> Int {
        let now = ContinuousClock.now
        revokedAt = revokedAt.filter { now - $0.value < .seconds(60) }
        revokedAt[bot] = now
        let entries = byBot[bot] ?? []
        entries.forEach { $0.close(.authenticationFailed, "token revoked or rotated") }
        return entries.count
    }

    /// The replica that last took each bot's lease (from the lease notifications), for the break-glass stop's
    /// answer while the database is unreachable.
    private var lastKnownHub: [String: String] = [:]
    /// The number of each bot's latest lease move heard of (from the notifications).
    private var newestMove: [String: Int64] = [:]

    /// The LISTEN was (re)established, perhaps on another database: a standby promoted after missing the last
    /// moves numbers them again from lower down. Numbers above `latest`, that database's latest move (nil: unknown,
    /// so all), came from elsewhere: the moves heard with them are forgotten (they would close every new connection
    /// of those bots at once), and connections holding them count as unnumbered (any later move closes them).
    func rebaseMoveNumbers(latest: Int64?) {
        let latest = latest ?? .min
        newestMove = newestMove.filter { $0.value <= latest }
        byBot = byBot.mapValues { entries in entries.map { ($0.leaseOrder ?? .min) > latest ? $0.unnumbered : $0 } }
    }

    func lastKnownHolder(of bot: String) -> String? { lastKnownHub[bot] }

    /// Replicas holding bots as read from the database (bot → replica); a holder a notification named already
    /// is kept (it may be newer than the read).
    func learnHolders(_ hubs: [String: String]) {
        for (bot, hub) in hubs where lastKnownHub[bot] == nil { lastKnownHub[bot] = hub }
    }

    /// `bot`'s newest connection here, if any.
    func newest(bot: String) -> (botID: Int32, connectionID: UUID)? {
        byBot[bot]?.last.map { ($0.botID, $0.connectionID) }
    }

    /// `bot`'s lease moved to `connectionID` (on this replica or another, `hub`) by the move numbered `order`:
    /// every connection of the bot here that an earlier move let in is closed with 4007 and stops counting for the
    /// bot. Notifications are delivered in commit order, but one can arrive after a later move's connection
    /// registered here: that connection (a higher number) is kept, and so is the later move's holder. An
    /// unnumbered move (a replica older than schema 13) or connection counts as earlier than anything numbered.
    @discardableResult
    func replaced(bot: String, by connectionID: UUID, order: Int64? = nil, hub: String? = nil) -> Int {
        if let order {
            // A later move was heard of already: it closed what this one would have.
            if let newest = newestMove[bot], newest > order { return 0 }
            newestMove[bot] = order
        }
        if let hub { lastKnownHub[bot] = hub }
        return closeEarlier(bot: bot, than: order, keeping: connectionID)
    }

    /// Closes `bot`'s connections here, other than `kept`, numbered below `order` (every one when `order` is nil).
    private func closeEarlier(bot: String, than order: Int64?, keeping kept: UUID?) -> Int {
        guard let entries = byBot[bot] else { return 0 }
        func earlier(_ entry: Entry) -> Bool {
            guard entry.connectionID != kept else { return false }
            guard let order, let own = entry.leaseOrder else { return true }
            return own < order
        }
        let stale = entries.filter(earlier)
        stale.forEach { $0.close(.replaced, "another connection took over bot \(bot)") }
        let rest = entries.filter { !earlier($0) }
        byBot[bot] = rest.isEmpty ? nil : rest
        return stale.count
    }

    /// The connection ended.
    func remove(bot: String, connectionID: UUID) {
        guard var entries = byBot[bot] else { return }
        entries.removeAll { $0.connectionID == connectionID }
        byBot[bot] = entries.isEmpty ? nil : entries
    }

    /// The bots with a connection here.
    var bots: [String] { Array(byBot.keys) }

    /// Every connection here: bot, row id and connection (the command dispatcher asks the ledger which of them
    /// holds its bot's lease).
    var leases: [(bot: String, botID: Int32, connectionID: UUID)] {
        byBot.flatMap { bot, entries in entries.map { (bot, $0.botID, $0.connectionID) } }
    }

    /// Closes the connections whose bot's lease, as PostgreSQL held it when read at `asOf` (`holders`: bot →
    /// connection, nil when nobody holds it), is not theirs: the periodic check behind the lease and token
    /// notifications. Connections registered after `asOf` are left alone (their lease is newer than the read).
    @discardableResult
    func reconcile(holders: [String: UUID?], asOf: ContinuousClock.Instant) -> Int {
        var closed = 0
        for (bot, entries) in byBot {
            guard let holder = holders[bot] else { continue }
            for entry in entries where entry.connectionID != holder && entry.registeredAt < asOf {
                entry.close(holder == nil ? .authenticationFailed : .replaced,
                            holder == nil ? "the bot's token was revoked or rotated" : "another connection took over bot \(bot)")
                closed += 1
            }
            let kept = entries.filter { $0.connectionID == holder || $0.registeredAt >= asOf }
            byBot[bot] = kept.isEmpty ? nil : kept
        }
        return closed
    }

    /// Open connections here.
    var count: Int { byBot.values.reduce(0) { $0 + $1.count } }

    /// Sends `frame` to `bot`'s connection `connectionID` (the one holding the lease; nil: the newest) if it is
    /// here; returns whether it was.
    @discardableResult
    func send(_ frame: Frame, to bot: String, connection connectionID: UUID? = nil) -> Bool {
        guard let entry = connectionID.map({ id in byBot[bot]?.first { $0.connectionID == id } }) ?? byBot[bot]?.last else { return false }
        entry.push(frame)
        return true
    }
}
