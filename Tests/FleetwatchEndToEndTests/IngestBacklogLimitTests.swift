import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Testing

/// The hub's two backlog limits against a real hub process: a message larger than one connection's limit is
/// stored (it used to stall its connection for good), and a fleet sending faster than the hub stores waits
/// within the hub-wide limit instead of growing the hub — and loses nothing.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct IngestBacklogLimitTests {
    static func start(_ db: TestDatabase, _ json: String) async throws -> HubUnderTest {
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: json)
        return hub
    }

    /// The value of one unlabelled gauge in the hub's /metrics.
    static func gauge(_ name: String, port: Int) async throws -> Double? {
        let (_, text) = try await api("GET", port: port, path: "/metrics", token: nil)
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    /// A 200 KB batch (random states barely compress) with `hub.max_pending_bytes` at its 64 KiB minimum.
    @Test(.timeLimit(.minutes(2)))
    func aBatchLargerThanTheConnectionsBacklogIsStored() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["big"], token: "secret", in: db)
        let hub = try await Self.start(db, #"{"hub": {"max_pending_bytes": 65536, "heartbeat_interval": 30}}"#)
        defer { Task { await hub.kill(SIGTERM) } }
        // Built before connecting: the hub closes (4008) a connection silent for two heartbeat intervals (10 s), and
        // building these random states takes a debug build a third of a second alone, far longer on a busy machine.
        let batch = HostileBotTests.megabyteBatch(states: 800)
        let client = try await ProtocolClient.connect(port: hub.port, bot: "big", token: "secret")
        defer { client.close() }
        var others: [Frame] = []
        let sequence = try await client.sendBatch(batch)
        let ack = await client.ack(of: sequence, until: .now + .seconds(60), others: &others)
        #expect(ack?.outcome == .stored, """
            no ack for a batch larger than max_pending_bytes: the connection \(client.ended.map { "ended: \($0)" } ?? "stayed open"); \
            the hub said: \(hub.log.split(separator: "\n").filter { $0.contains(" big ") || $0.contains("agent connection") }.suffix(5))
            """)
        #expect(try await BotIsolationTests.count(db, "SELECT count(DISTINCT (bot_id, epoch, seq)) FROM samples") == 1)
    }

    /// Eight bots each send three 1 MB batches without waiting for acks (24 MB at once) to a hub whose
    /// hub-wide backlog is 1 MiB: every batch is stored once, and what waited at once stayed within the limit
    /// plus one message per connection — not the 8 × 2 MB the per-connection limit (1 MiB) allows.
    @Test(.timeLimit(.minutes(4)))
    func aFleetFasterThanTheHubWaitsWithinTheHubWideLimit() async throws {
        let db = try await TestDatabase.create()
        let bots = (0..<8).map { "flood-\($0)" }
        try await registerBots(bots, token: "secret", in: db)
        // Silence is judged on whole frames: on a loaded machine a 1 MB frame can take longer to arrive than the
        // default two 5-s heartbeats (the hub closed such connections with 4008), so the test allows a minute.
        let hub = try await Self.start(db, #"{"hub": {"max_pending_bytes_total": 1048576, "max_pending_bytes": 1048576, "max_bytes_per_second": 1073741824, "heartbeat_interval": 30}}"#)
        defer { Task { await hub.kill(SIGTERM) } }
        let batch = HostileBotTests.megabyteBatch()
        var wire = 0
        try await withThrowingTaskGroup(of: Int.self) { group in
            for bot in bots {
                group.addTask {
                    let client = try await ProtocolClient.connect(port: hub.port, bot: bot, token: "secret")
                    defer { client.close() }
                    var last: UInt64 = 0
                    for _ in 0..<3 { last = try await client.sendBatch(batch, timeout: .seconds(120)) }
                    var others: [Frame] = []
                    let ack = await client.ack(of: last, until: .now + .seconds(150), others: &others)
                    #expect(ack != nil, "\(bot): no ack for its last batch")
                    return 0
                }
            }
            for try await _ in group {}
        }
        wire = try BatchFrame.make(bootEpoch: 1, sequence: 1, payload: batch).compressed.readableBytes
        #expect(try await BotIsolationTests.count(db, "SELECT count(DISTINCT (bot_id, epoch, seq)) FROM samples") == 24)
        let peak = try #require(try await Self.gauge("fleetwatch_ingest_backlog_peak_bytes", port: hub.port))
        print("ingest backlog: 8 bots x 3 batches of \(wire) bytes; peak waiting \(Int(peak)) bytes (limit 1 MiB)")
        #expect(peak <= Double((1 << 20) + 8 * (wire + 64)), "peak backlog \(peak) bytes")
        #expect(peak > Double(1 << 20), "the fleet never filled the backlog: the test did not test the limit")
        #expect(try await Self.gauge("fleetwatch_ingest_backlog_bytes", port: hub.port) == 0)
    }

    /// With `hub.max_unevaluated_batches` at its minimum (100), six bots each send 300 small batches, each after
    /// the previous one's ack (1,800 batches, far more than the bound): every batch is acknowledged as stored,
    /// and afterwards nothing waits for evaluation (`fleetwatch_alert_evaluation_backlog` is the count the readers
    /// wait on) and no reader is held. A batch never given back by evaluation would stay in that count, and once
    /// 100 were missing it would stop every reader for good: the next batch would get no ack.
    @Test(.timeLimit(.minutes(3)))
    func theEvaluationBoundHoldsNoReaderForGood() async throws {
        let db = try await TestDatabase.create()
        let bots = (0..<6).map { "eval-\($0)" }
        try await registerBots(bots, token: "secret", in: db)
        let hub = try await Self.start(db, #"{"hub": {"max_unevaluated_batches": 100, "max_bytes_per_second": 1073741824}}"#)
        defer { Task { await hub.kill(SIGTERM) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for bot in bots {
                group.addTask {
                    let client = try await ProtocolClient.connect(port: hub.port, bot: bot, token: "secret")
                    defer { client.close() }
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    var others: [Frame] = []
                    for i in 0..<300 {
                        let t = now - 300_000 + Int64(i) * 1000
                        let sequence = try await client.sendBatch(BatchPayload(series: [
                            Series(name: "memory_usage_mb", kind: .gauge, timestamps: [t], values: [Double(100 + i % 7)]),
                            Series(name: "orders_total", kind: .counter, timestamps: [t], values: [Double(i)]),
                        ]))
                        let ack = await client.ack(of: sequence, until: .now + .seconds(30), others: &others)
                        guard ack?.outcome == .stored else {
                            Issue.record("\(bot): batch \(i) got \(String(describing: ack?.outcome)), not stored")
                            return
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        // Every sample once (the review upkeep may have merged closed minutes' rows meanwhile, so samples are
        // counted, not rows).
        #expect(try await BotIsolationTests.count(db, "SELECT count(*) FROM sample_points WHERE bot LIKE 'eval-%'") == 3600)
        #expect(try await BotIsolationTests.count(db, "SELECT count(DISTINCT (bot, metric, ts)) FROM sample_points WHERE bot LIKE 'eval-%'") == 3600)
        var backlog: Double?
        for _ in 0..<100 {
            backlog = try await Self.gauge("fleetwatch_alert_evaluation_backlog", port: hub.port)
            if backlog == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(backlog == 0)
        #expect(try await Self.gauge("fleetwatch_ingest_readers_paused", port: hub.port) == 0)
    }
}
