import FleetwatchProtocol
@testable import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// Hellos let in together (`LeaseTaker`): one statement for the hellos that waited while another ran, each answered as
/// if alone — a bot named twice is let in twice in turn, and one hello PostgreSQL refuses fails only itself.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct LeaseTakerTests {
    let logger = Logger(label: "test")

    func request(_ bot: String, token: String = "secret", version: String = "t") -> LeaseTaker.Request {
        LeaseTaker.Request(bot: bot, tokenHash: Array(BotToken.hash(token).readableBytesView), connectionID: UUID(), epoch: 1,
                           agentVersion: version, hub: "h")
    }

    /// Holds the row of `bot` locked while `body` runs, so the taker's first statement (a hello of `bot`) waits and
    /// every hello sent meanwhile queues for the next one.
    func whileBlocked<T: Sendable>(_ db: TestDatabase, bot: String, taker: LeaseTaker,
                                   _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await db.withClient { (client: PostgresClient) async throws -> T in
            try await client.withConnection { conn in
                try await conn.query("BEGIN", logger: logger)
                try await conn.query("SELECT 1 FROM bots WHERE name = \(bot) FOR UPDATE", logger: logger)
                async let blocked = taker.take(request(bot))
                // The blocked hello's statement is running (it waits for the row) before the others are sent.
                while await taker.statements == 0 { try await Task.sleep(for: .milliseconds(10)) }
                try await Task.sleep(for: .milliseconds(100))
                async let result = body()
                try await Task.sleep(for: .milliseconds(300))
                try await conn.query("COMMIT", logger: logger)
                #expect(try await blocked?.taken == true)
                return try await result
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func hellosThatWaitedTogetherShareOneStatement() async throws {
        let db = try await TestDatabase.create()
        let names = (0..<100).map { "bot-\($0)" }
        try await registerBots(["blocker"] + names, token: "secret", in: db)
        try await db.withClient { client in
            let taker = LeaseTaker(client: client, logger: logger, maxConcurrent: 1)
            let requests = names.map { request($0, token: $0 == "bot-7" ? "wrong" : "secret") } + [request("ghost")]
            let leases = try await whileBlocked(db, bot: "blocker", taker: taker) {
                try await withThrowingTaskGroup(of: (Int, LeaseTaker.Lease?).self) { group in
                    for (i, r) in requests.enumerated() { group.addTask { (i, try await taker.take(r)) } }
                    return try await group.reduce(into: [Int: LeaseTaker.Lease?]()) { $0[$1.0] = $1.1 }
                }
            }
            #expect(await taker.statements == 2, "the blocked hello's statement, then one for the 101 that waited")
            #expect(leases.count == requests.count)
            // Each answered as if alone: the right token takes the lease, a wrong one nothing, an unknown bot is nil.
            for (i, r) in requests.enumerated() {
                let lease = leases[i] ?? nil
                switch r.bot {
                case "ghost": #expect(lease == nil)
                case "bot-7": #expect(lease?.taken == false && lease?.hasToken == true)
                default: #expect(lease?.taken == true && lease?.oldConnection == nil && lease?.stored == 0 && lease?.commandsWaiting == false, "\(r.bot)")
                }
            }
            var held: [String: UUID] = [:]
            for try await (name, connection) in try await client.query(
                "SELECT name, connection_id FROM bots WHERE connection_id IS NOT NULL", logger: logger).decode((String, UUID).self) {
                held[name] = connection
            }
            let expected = Dictionary(uniqueKeysWithValues: requests.filter { $0.bot != "bot-7" && $0.bot != "ghost" }.map { ($0.bot, $0.connectionID) })
            #expect(held.filter { $0.key != "blocker" } == expected)
        }
    }

    /// The same bot twice among hellos that waited together: the second goes in the next statement and sees the first's
    /// lease, which it takes over; the bot ends with the second's connection.
    @Test(.timeLimit(.minutes(2)))
    func aBotNamedTwiceIsLetInInTurn() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["blocker", "twice", "other"], token: "secret", in: db)
        try await db.withClient { client in
            let taker = LeaseTaker(client: client, logger: logger, maxConcurrent: 1)
            let first = request("twice"), second = request("twice"), other = request("other")
            let (a, b, c) = try await whileBlocked(db, bot: "blocker", taker: taker) {
                async let a = taker.take(first)
                async let b = taker.take(second)
                async let c = taker.take(other)
                return try await (a, b, c)
            }
            #expect(await taker.statements == 3)
            #expect(c?.taken == true)
            let (earlier, later) = a?.oldConnection == nil ? (first, second) : (second, first)
            let laterLease = earlier.connectionID == first.connectionID ? b : a
            #expect(laterLease?.oldConnection == earlier.connectionID)
            #expect(try await client.query("SELECT connection_id FROM bots WHERE name = 'twice'", logger: logger)
                .decode(UUID?.self).first { _ in true } == .some(later.connectionID))
        }
    }

    /// A hello PostgreSQL refuses for its own data (a NUL in the agent version: text cannot hold it) fails alone; the
    /// hellos that waited with it are let in.
    @Test(.timeLimit(.minutes(2)))
    func oneRefusedHelloFailsOnlyItself() async throws {
        let db = try await TestDatabase.create()
        let names = (0..<10).map { "good-\($0)" }
        try await registerBots(["blocker", "bad"] + names, token: "secret", in: db)
        try await db.withClient { client in
            let taker = LeaseTaker(client: client, logger: logger, maxConcurrent: 1)
            let outcomes = try await whileBlocked(db, bot: "blocker", taker: taker) {
                await withTaskGroup(of: (String, Bool).self) { group in
                    for name in names { group.addTask { (name, (try? await taker.take(request(name)))??.taken == true) } }
                    group.addTask { (("bad"), (try? await taker.take(request("bad", version: "v\u{0}1"))) != nil) }
                    return await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
                }
            }
            #expect(outcomes["bad"] == false, "the refused hello throws")
            #expect(names.allSatisfy { outcomes[$0] == true }, "\(outcomes)")
            let statements = await taker.statements
            #expect(statements == 2 + 11, "the blocked one, the group, then each alone: \(statements)")
        }
    }
}
