@testable import FleetwatchHub
import FleetwatchProtocol
@testable import FleetwatchStorage
import Foundation
import Synchronization
import Testing

/// Lease moves are numbered (`bots.lease_order`): a notification closes only connections of earlier moves, however
/// late it is delivered.
@Suite struct LiveConnectionsLeaseOrderTests {
    /// The closes each connection was asked for.
    final class Closes: Sendable {
        private let codes = Mutex<[UUID: [CloseCode]]>([:])
        func record(_ id: UUID) -> @Sendable (CloseCode, String) -> Void {
            { code, _ in self.codes.withLock { $0[id, default: []].append(code) } }
        }
        func of(_ id: UUID) -> [CloseCode] { codes.withLock { $0[id] ?? [] } }
    }

    static func add(_ connections: LiveConnections, _ closes: Closes, bot: String = "bot", order: Int64?) async -> UUID {
        let id = UUID()
        await connections.add(bot: bot, botID: 1, connectionID: id, leaseOrder: order, checkedAt: .now,
                              push: { _ in }, close: closes.record(id))
        return id
    }

    /// The failure CI met: connection A's move, then B's, and A's notification delivered after B registered.
    @Test func aLateNotificationLeavesTheNewerConnectionOpen() async {
        let connections = LiveConnections()
        let closes = Closes()
        let a = await Self.add(connections, closes, order: 7)
        let b = await Self.add(connections, closes, order: 8)
        #expect(await connections.replaced(bot: "bot", by: a, order: 7, hub: "hub-a") == 0)
        #expect(closes.of(a).isEmpty && closes.of(b).isEmpty)
        #expect(await connections.count == 2)
        // B's own notification then closes A, and only A.
        #expect(await connections.replaced(bot: "bot", by: b, order: 8, hub: "hub-b") == 1)
        #expect(closes.of(a) == [.replaced])
        #expect(closes.of(b).isEmpty)
        #expect(await connections.newest(bot: "bot")?.connectionID == b)
        #expect(await connections.lastKnownHolder(of: "bot") == "hub-b")
    }

    /// Notifications out of order: the earlier move's, heard after the later one, changes nothing (not even the
    /// replica named as the holder).
    @Test func anEarlierMoveHeardAfterALaterOneChangesNothing() async {
        let connections = LiveConnections()
        let closes = Closes()
        let b = await Self.add(connections, closes, order: 12)
        #expect(await connections.replaced(bot: "bot", by: b, order: 12, hub: "hub-b") == 0)
        #expect(await connections.replaced(bot: "bot", by: UUID(), order: 11, hub: "hub-a") == 0)
        #expect(closes.of(b).isEmpty)
        #expect(await connections.lastKnownHolder(of: "bot") == "hub-b")
        // A later move on another replica closes it.
        #expect(await connections.replaced(bot: "bot", by: UUID(), order: 13, hub: "hub-c") == 1)
        #expect(closes.of(b) == [.replaced])
        #expect(await connections.count == 0)
    }

    /// A connection that registers after a later move of its bot was heard of is closed at once (4007); other bots'
    /// numbers do not matter.
    @Test func aConnectionOfAnEarlierMoveRegisteringLateIsClosedAtOnce() async {
        let connections = LiveConnections()
        let closes = Closes()
        await connections.replaced(bot: "bot", by: UUID(), order: 20, hub: "hub-b")
        let late = await Self.add(connections, closes, order: 19)
        #expect(closes.of(late) == [.replaced])
        #expect(await connections.count == 0)
        let other = await Self.add(connections, closes, bot: "other", order: 3)
        #expect(closes.of(other).isEmpty)
        let newer = await Self.add(connections, closes, order: 21)
        #expect(closes.of(newer).isEmpty)
        #expect(await connections.count == 2)
    }

    /// Listening again on a promoted standby whose latest move is 470: numbers above it came from the old primary.
    /// A new connection with a lower number is let in, and a connection holding a number from the old primary is
    /// closed by the standby's next move; numbers at or below 470 still judge.
    @Test func listeningAgainForgetsNumbersAboveTheDatabasesLatestMove() async {
        let connections = LiveConnections()
        let closes = Closes()
        await connections.replaced(bot: "bot", by: UUID(), order: 500, hub: "hub-b")
        await connections.replaced(bot: "kept", by: UUID(), order: 400, hub: "hub-b")
        let oldPrimary = await Self.add(connections, closes, bot: "other", order: 510)
        let stays = await Self.add(connections, closes, bot: "kept", order: 400)
        await connections.rebaseMoveNumbers(latest: 470)
        let afterFailover = await Self.add(connections, closes, order: 480)
        #expect(closes.of(afterFailover).isEmpty)
        #expect(await connections.replaced(bot: "bot", by: afterFailover, order: 480) == 0)
        #expect(await connections.replaced(bot: "other", by: UUID(), order: 481) == 1)
        #expect(closes.of(oldPrimary) == [.replaced])
        let late = await Self.add(connections, closes, bot: "kept", order: 399)
        #expect(closes.of(late) == [.replaced])
        #expect(closes.of(stays).isEmpty)
        // Unknown latest move (the read failed): everything heard is forgotten.
        await connections.rebaseMoveNumbers(latest: nil)
        let lower = await Self.add(connections, closes, bot: "kept", order: 10)
        #expect(closes.of(lower).isEmpty)
        #expect(await connections.replaced(bot: "kept", by: lower, order: 10) == 1)
        #expect(closes.of(stays) == [.replaced])
    }

    /// Unnumbered connections (provisional, in-memory store) count as earlier than any numbered move; an
    /// unnumbered move (a replica older than schema 13) closes every other connection, as before numbering.
    @Test func unnumberedMovesAndConnectionsKeepTheOldRule() async {
        let connections = LiveConnections()
        let closes = Closes()
        let provisional = await Self.add(connections, closes, order: nil)
        let numbered = await Self.add(connections, closes, order: 5)
        #expect(await connections.replaced(bot: "bot", by: numbered, order: 5) == 1)
        #expect(closes.of(provisional) == [.replaced])
        let newer = await Self.add(connections, closes, order: 9)
        #expect(await connections.replaced(bot: "bot", by: UUID(), order: nil, hub: "old-hub") == 2)
        #expect(closes.of(numbered) == [.replaced] && closes.of(newer) == [.replaced])
        #expect(await connections.lastKnownHolder(of: "bot") == "old-hub")
    }

    /// The notification's payload: numbered (schema 13), from an older replica (unnumbered; the rest is the hub's
    /// name), and anything else refused.
    @Test func payloadsAreReadWithAndWithoutANumber() {
        let id = UUID()
        #expect(PostgresIngestStore.leaseMove("\(id)\tbot-1\t42\thub\ta") ==
                .init(bot: "bot-1", connectionID: id, order: 42, hub: "hub\ta"))
        #expect(PostgresIngestStore.leaseMove("\(id)\tbot-1\thub-a") == .init(bot: "bot-1", connectionID: id, order: nil, hub: "hub-a"))
        #expect(PostgresIngestStore.leaseMove("\(id)\tbot-1\thub\tb") == .init(bot: "bot-1", connectionID: id, order: nil, hub: "hub\tb"))
        #expect(PostgresIngestStore.leaseMove("\(id)\tbot-1") == .init(bot: "bot-1", connectionID: id, order: nil, hub: nil))
        #expect(PostgresIngestStore.leaseMove("not-a-uuid\tbot-1\t1\thub") == nil)
        #expect(PostgresIngestStore.leaseMove("\(id)") == nil)
    }
}
