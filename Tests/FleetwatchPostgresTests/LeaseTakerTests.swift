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
    /// every hello sent meanwhile queues for the next ones; lets go once `queued` hellos wait.
    func whileBlocked<T: Sendable>(_ db: TestDatabase, bot: String, taker: LeaseTaker, until queued: Int,
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
                while await taker.queued < queued { try await Task.sleep(for: .milliseconds(10)) }
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
            let leases = try await whileBlocked(db, bot: "blocker", taker: taker, until: requests.count) {
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
            let (a, b, c) = try await whileBlocked(db, bot: "blocker", taker: taker, until: 3) {
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
            let outcomes = try await whileBlocked(db, bot: "blocker", taker: taker, until: names.count + 1) {
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

    struct Answer: Sendable {
        var request: LeaseTaker.Request
        var lease: LeaseTaker.Lease?
    }

    /// Many hellos of one bot (a bot with a valid token opening connections in a loop; here many more than a group
    /// holds) go one per statement, in turn, each taking over from the one before; the other bots' hellos that came
    /// after them are let in by the first statement, not behind the flood.
    @Test(.timeLimit(.minutes(2)))
    func aFloodOfOneBotsHellosHoldsUpNoOther() async throws {
        let db = try await TestDatabase.create()
        let others = (0..<7).map { "calm-\($0)" }
        let floodCount = 60
        try await registerBots(["blocker", "flood"] + others, token: "secret", in: db)
        let flood = (0..<floodCount).map { _ in request("flood") }
        let calm = others.map { request($0) }
        try await db.withClient { client in
            // Groups of 8: the flood's first hello and the 7 others.
            let taker = LeaseTaker(client: client, logger: logger, maxGroup: 8, maxConcurrent: 1)
            let answers: [Answer] = try await whileBlocked(db, bot: "blocker", taker: taker, until: floodCount + others.count) {
                try await withThrowingTaskGroup(of: Answer.self) { group in
                    // The flood first, all queued, then the others behind it.
                    for r in flood { group.addTask { Answer(request: r, lease: try await taker.take(r)) } }
                    while await taker.queued < floodCount { try await Task.sleep(for: .milliseconds(10)) }
                    for r in calm { group.addTask { Answer(request: r, lease: try await taker.take(r)) } }
                    var all: [Answer] = []
                    for try await a in group { all.append(a) }
                    return all
                }
            }
            #expect(await taker.statements == 2 + floodCount - 1, "the blocked one, one with every bot, then the flood's others one by one")
            #expect(answers.count == floodCount + calm.count)
            #expect(answers.allSatisfy { $0.lease?.taken == true })
            // The calm bots were let in by one transaction, and every later hello of the flood by one of its own after
            // it: transaction ids grow by one per statement.
            let calmTransactions = try await client.query(
                "SELECT count(DISTINCT xmin::text), min(xmin::text::int8) FROM bots WHERE name LIKE 'calm-%'", logger: logger)
                .decode((Int64, Int64).self).first { _ in true }
            let floodTransaction = try await client.query("SELECT xmin::text::int8 FROM bots WHERE name = 'flood'", logger: logger)
                .decode(Int64.self).first { _ in true }
            #expect(calmTransactions?.0 == 1)
            if let calmXID = calmTransactions?.1, let floodXID = floodTransaction {
                #expect(floodXID - calmXID >= Int64(floodCount - 1), "calm in \(calmXID), the flood's last in \(floodXID)")
            }
            // The flood's hellos went one at a time: each took over from exactly one other, one chain through all.
            var next: [UUID: UUID] = [:]
            var starts: [UUID] = []
            for a in answers where a.request.bot == "flood" {
                if let old = a.lease?.oldConnection { next[old] = a.request.connectionID } else { starts.append(a.request.connectionID) }
            }
            #expect(starts.count == 1)
            var chain = Array(starts.prefix(1))
            while let last = chain.last, let after = next[last], chain.count <= floodCount { chain.append(after) }
            #expect(chain.count == floodCount && Set(chain).count == floodCount)
            let holder = try await client.query("SELECT connection_id FROM bots WHERE name = 'flood'", logger: logger)
                .decode(UUID?.self).first { _ in true }
            #expect(holder == .some(chain.last))
        }
    }
}
