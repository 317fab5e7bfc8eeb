import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchSchema
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct PostgresStoreTests {
    let logger = Logger(label: "test")

    func batch(_ seq: UInt64, epoch: UInt64 = 5, values: [Double] = [1.5, 2.5], nowMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> ValidatedBatch {
        let series = [Series(name: "daily_pnl", kind: .gauge, timestamps: values.indices.map { nowMs + Int64($0) }, values: values),
                      Series(name: "websocket_status", kind: .state, timestamps: [nowMs], states: ["connected"])]
        return ValidatedBatch(epoch: epoch, sequence: seq, sentSamples: values.count + 1, series: series, refusedSamples: 0,
                              firstTimestampMs: nowMs)
    }

    /// A store with the partitions in place and bot-1 (token "secret") accepted on a new connection.
    func acceptedSession(_ client: PostgresClient) async throws -> (PostgresIngestStore, Hello, BotSession) {
        let store = PostgresIngestStore(client: client, logger: logger)
        try await PartitionMaintainer(client: client, logger: logger).ensureWindow()
        let hello = Hello(botID: "bot-1", token: "secret", agentVersion: "t", bootEpoch: 5, lastAckedSequence: 0)
        guard case .accepted(let session) = try await store.authenticate(hello, connectionID: UUID(), hub: "h") else {
            throw WireError(.invalidField, "bot-1 was refused")
        }
        return (store, hello, session)
    }

    @Test func migrationsAreRecordedAndRunOnce() async throws {
        let db = try await TestDatabase.create()
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let m = Migrator(client: client, logger: logger)
            #expect(try await m.migrate() == Schema.migrations.map(\.version))
            #expect(try await m.migrate().isEmpty)
            #expect(try await m.currentVersion() == Schema.latestVersion)
        }
    }

    @Test func storesEachBatchExactlyOnce() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let (store, hello, session) = try await acceptedSession(client)
            #expect(try await store.store(batch(1), session: session) == .stored)
            #expect(try await store.store(batch(1), session: session) == .duplicate)
            #expect(try await store.store(batch(2, values: [3]), session: session) == .stored)
            let rows = try await client.query("""
                SELECT metric, value, state FROM sample_points WHERE bot = 'bot-1' ORDER BY seq, ts, metric
                """, logger: logger).decode((String, Double?, String?).self).all()
            #expect(rows.count == 5)
            #expect(rows.compactMap(\.1) == [1.5, 2.5, 3])
            #expect(rows.compactMap(\.2) == ["connected", "connected"])
            // A reconnect learns the stored high-water mark.
            guard case .accepted(let again) = try await store.authenticate(hello, connectionID: UUID(), hub: "h") else { return }
            #expect(again.storedSequence == 2)
            // The first connection lost its lease to the second.
            #expect(try await store.store(batch(3), session: session) == .leaseLost)
            #expect(try await store.store(batch(3), session: again) == .stored)
        }
    }

    /// Each stored row says when its last sample is (`t_end`, schema 0011), a state's included: the rollups find a
    /// batch that runs past its first minute by it.
    @Test func eachRowCarriesItsLastSamplesTime() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let (store, hello, session) = try await acceptedSession(client)
            let t0 = Int64(Date().timeIntervalSince1970 * 1000) - 300_000
            let spans = [
                [Series(name: "daily_pnl", kind: .gauge, timestamps: [t0 + 20, t0, t0 + 150_250], values: [1, 2, 3]),
                 Series(name: "websocket_status", kind: .state, timestamps: [t0 + 9_000], states: ["connected"])],
                [Series(name: "daily_pnl", kind: .gauge, timestamps: [t0 + 1_000], values: [4]),
                 Series(name: "websocket_status", kind: .state, timestamps: [t0 + 200_125], states: ["reconnecting"])],
            ]
            for (i, series) in spans.enumerated() {
                let batch = ValidatedBatch(epoch: 5, sequence: UInt64(i + 1), sentSamples: 4, series: series, refusedSamples: 0,
                                           firstTimestampMs: series.flatMap(\.timestamps).min())
                #expect(try await store.store(batch, session: session) == .stored)
            }
            // A batch spanning more than a minute is cut into a row per minute (SampleRows): each row ends at its
            // own last sample, none is longer than a minute, and each batch's last row ends at its last sample.
            let ends = try await client.query("""
                SELECT (extract(epoch FROM max(t_end)) * 1000)::int8 - \(t0) FROM samples GROUP BY seq ORDER BY seq
                """, logger: logger).decode(Int64.self).all()
            #expect(ends == [150_250, 200_125])
            let wrongEnds = try await client.query("""
                SELECT count(*) FROM samples s
                WHERE s.t_end - s.t_start > interval '1 minute'
                   OR s.t_end <> s.t_start + (SELECT max(o) FROM unnest(s.offsets_ms || COALESCE(s.state_offsets_ms, '{}')) o) * interval '1 millisecond'
                """, logger: logger).decode(Int64.self).all()
            #expect(wrongEnds == [0])
            // Long after the migration (rollups read a minute back and long rows by their t_end), the minute of the
            // first batch's last sample, two minutes after its start, rolls up from the hub's own rows.
            try await client.query("UPDATE samples_t_end_since SET since = now() - interval '7 days'", logger: logger)
            let minute = Date(timeIntervalSince1970: (Double(t0 + 150_250) / 60_000).rounded(.down) * 60)
            try await client.query("SELECT fleetwatch_rollup(\(minute), \(minute.addingTimeInterval(60)))", logger: logger)
            let rolled = try await client.query("""
                SELECT samples, max FROM rollup_1m r JOIN metrics m ON m.id = r.metric_id WHERE m.name = 'daily_pnl' AND r.bucket = \(minute)
                """, logger: logger).decode((Int64, Double).self).all()
            #expect(rolled.count == 1 && rolled.first?.0 == 1 && rolled.first?.1 == 3, "\(rolled)")
        }
    }

    /// A sample's time is stored to its millisecond, before and after its minute is merged into one row. The hub
    /// once bound row times as postgres-nio encodes a `Date` (truncated to the microsecond), which stored about a
    /// quarter of millisecond times a microsecond early (`.761` as `.760999`) until re-chunking put them right:
    /// a merged minute then read differently from the rows it came from.
    @Test func sampleTimesAreStoredToTheirMillisecondBeforeAndAfterRechunking() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let (store, _, session) = try await acceptedSession(client)
            // A minute of one-second batches ten minutes ago, each sample on another millisecond of its second.
            let minuteMs = (Int64(Date().timeIntervalSince1970 * 1000) / 60_000 - 10) * 60_000
            let times = (0..<60).map { minuteMs + Int64($0) * 1000 + Int64($0 * 37 % 1000) }
            let truncated = times.filter { Int64(Date(timeIntervalSince1970: Double($0) / 1000)
                .timeIntervalSince(Date(timeIntervalSince1970: 946_684_800)) * 1_000_000) != ($0 - 946_684_800_000) * 1000 }
            #expect(!truncated.isEmpty, "some of these times are ones a truncating encoding gets wrong")
            for (i, ms) in times.enumerated() {
                let series = [Series(name: "daily_pnl", kind: .gauge, timestamps: [ms], values: [Double(i)])]
                let batch = ValidatedBatch(epoch: 5, sequence: UInt64(i + 1), sentSamples: 1, series: series, refusedSamples: 0,
                                           firstTimestampMs: ms)
                #expect(try await store.store(batch, session: session) == .stored)
            }
            func stored() async throws -> [Int64] {
                try await client.query("""
                    SELECT (extract(epoch FROM ts) * 1000000)::int8 FROM sample_points WHERE bot = 'bot-1' ORDER BY ts
                    """, logger: logger).decode(Int64.self).all()
            }
            let exact = times.map { $0 * 1000 }
            #expect(try await stored() == exact)
            let from = Date(timeIntervalSince1970: Double(minuteMs) / 1000)
            let merged = try await client.query("SELECT fleetwatch_rechunk(\(from), \(from.addingTimeInterval(60)))", logger: logger)
                .decode(Int.self).first { _ in true }
            #expect(merged == 1)
            #expect(try await stored() == exact)
        }
    }

    /// What a replica reads, once it listens for lease moves, to know which replica holds each bot.
    @Test func connectedHubsNameTheReplicaHoldingEachBot() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1", "bot-2", "bot-3"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger)
            func hello(_ bot: String) -> Hello { Hello(botID: bot, token: "secret", agentVersion: "t", bootEpoch: 5, lastAckedSequence: 0) }
            guard case .accepted(let one) = try await store.authenticate(hello("bot-1"), connectionID: UUID(), hub: "hub-a"),
                  case .accepted = try await store.authenticate(hello("bot-2"), connectionID: UUID(), hub: "hub-b") else {
                Issue.record("refused"); return
            }
            #expect(try await store.connectedHubs() == ["bot-1": "hub-a", "bot-2": "hub-b"])
            await store.release(one)
            #expect(try await store.connectedHubs() == ["bot-2": "hub-b"])
        }
    }

    /// Lease moves are numbered in commit order: hellos for one bot racing through two replicas' stores each get their
    /// own number, the connection holding the lease at the end has the highest, and that is the database's latest move.
    @Test func leaseMovesAreNumberedInCommitOrder() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["raced"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let stores = [PostgresIngestStore(client: client, logger: logger), PostgresIngestStore(client: client, logger: logger)]
            #expect(try await stores[0].latestLeaseMove() == 0)
            let hello = Hello(botID: "raced", token: "secret", agentVersion: "t", bootEpoch: 5, lastAckedSequence: 0)
            let sessions = try await withThrowingTaskGroup(of: BotSession?.self) { group in
                for n in 0..<12 {
                    group.addTask {
                        guard case .accepted(let s) = try await stores[n % 2].authenticate(hello, connectionID: UUID(), hub: "hub-\(n % 2)")
                        else { return nil }
                        return s
                    }
                }
                return try await group.reduce(into: [BotSession]()) { if let s = $1 { $0.append(s) } }
            }
            #expect(sessions.count == 12)
            let orders = sessions.compactMap(\.leaseOrder)
            #expect(orders.count == 12 && Set(orders).count == 12 && orders.allSatisfy { $0 > 0 })
            let holder = try #require(sessions.max { ($0.leaseOrder ?? 0) < ($1.leaseOrder ?? 0) })
            var held: (UUID, Int64)?
            for try await row in try await client.query("SELECT connection_id, lease_order FROM bots WHERE name = 'raced'", logger: logger)
                .decode((UUID, Int64).self) { held = row }
            #expect(held?.0 == holder.connectionID && held?.1 == holder.leaseOrder)
            #expect(try await stores[1].latestLeaseMove() == holder.leaseOrder)
        }
    }

    /// The health check never waits for a bot's row that a batch statement holds: it records the others, and the held
    /// one when it is free again (waiting had deadlocked with batch statements at 5,000 bots).
    /// Waiting would hang for good (the lock is released only after `record` returns); the limit catches that. It is
    /// not tighter because it also covers making and migrating the test's database, which took 38–75 s in the main
    /// phase's opening burst (about a hundred tests doing the same at once) and ran past one minute in 2 of 5 runs.
    @Test(.timeLimit(.minutes(3)))
    func theHealthCheckSkipsARowHeldByAnother() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["held", "free"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = HealthCheckStore(client: client, logger: logger)
            let results = [(bot: "held", status: "healthy", message: "m1"), (bot: "free", status: "warning", message: "m2")]
            let left = try await client.withConnection { conn in
                try await conn.query("BEGIN", logger: logger)
                try await conn.query("SELECT 1 FROM bots WHERE name = 'held' FOR UPDATE", logger: logger)
                let left = try await store.record(results, passes: 2)
                try await conn.query("COMMIT", logger: logger)
                return left
            }
            #expect(left == ["held"])
            func status(_ bot: String) async throws -> String? {
                try await client.query("SELECT health_status FROM bots WHERE name = \(bot)", logger: logger)
                    .decode(String?.self).first { _ in true } ?? nil
            }
            #expect(try await status("free") == "warning")
            #expect(try await status("held") == nil)
            #expect(try await store.record(results).isEmpty)
            #expect(try await status("held") == "healthy")
        }
    }

    @Test func authenticationRefusals() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger)
            func auth(_ bot: String, _ token: String) async throws -> AuthOutcome {
                try await store.authenticate(Hello(botID: bot, token: token, agentVersion: "t", bootEpoch: 1, lastAckedSequence: 0),
                                             connectionID: UUID(), hub: "h")
            }
            // A wrong token moves nothing: the lease stays with the connection that presented the right one.
            let holder = UUID()
            guard case .accepted = try await store.authenticate(Hello(botID: "bot-1", token: "secret", agentVersion: "t", bootEpoch: 1,
                                                                       lastAckedSequence: 0), connectionID: holder, hub: "h") else {
                Issue.record("right token refused"); return
            }
            #expect(try await auth("bot-1", "nope") == .refused("wrong token"))
            #expect(try await client.query("SELECT connection_id FROM bots WHERE name = 'bot-1'", logger: logger)
                .decode(UUID?.self).first { _ in true } == .some(holder))
            #expect(try await auth("ghost", "secret") == .refused("unknown bot id"))
            try await client.query("UPDATE bots SET token_hash = NULL WHERE name = 'bot-1'", logger: logger)
            #expect(try await auth("bot-1", "secret") == .refused("no token issued or token revoked"))
            let open = PostgresIngestStore(client: client, logger: logger, autoRegister: true)
            guard case .accepted = try await open.authenticate(Hello(botID: "new-bot", token: "tofu", agentVersion: "t", bootEpoch: 1,
                                                                     lastAckedSequence: 0), connectionID: UUID(), hub: "h") else {
                Issue.record("auto-register refused"); return
            }
            let again = try await open.authenticate(Hello(botID: "new-bot", token: "other", agentVersion: "t", bootEpoch: 1,
                                                          lastAckedSequence: 0), connectionID: UUID(), hub: "h")
            #expect(again == .refused("wrong token"))
        }
    }

    @Test func missingPartitionIsCreatedOnDemand() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger)
            guard case .accepted(let session) = try await store.authenticate(
                Hello(botID: "bot-1", token: "secret", agentVersion: "t", bootEpoch: 5, lastAckedSequence: 0), connectionID: UUID(), hub: "h")
            else { return }
            let threeDaysAgo = Int64(Date().timeIntervalSince1970 * 1000) - 3 * 86_400_000
            #expect(try await store.store(batch(1, nowMs: threeDaysAgo), session: session) == .stored)
            let partitions = try await client.query("""
                SELECT count(*) FROM pg_inherits WHERE inhparent = 'samples'::regclass
                """, logger: logger).decode(Int64.self).all()
            #expect(partitions == [1])
        }
    }
}
