import FleetwatchAgent
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import Testing

/// Real hub processes on a real PostgreSQL, real agents over real loopback WebSockets.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct EndToEndTests {
    /// An agent flushed by hand (no background flushes), so the test knows every batch it seals.
    static func agent(_ bot: String, hub: String, ledger: SealedLedger, token: String = "secret",
                      protocolVersion: UInt16 = WireProtocol.version) throws -> MonitorAgent {
        var c = AgentConfiguration(hubURL: hub, botID: bot, token: token)
        c.protocolVersion = protocolVersion
        c.flushInterval = .seconds(3600)
        c.processCollector = false
        c.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(500))
        c.buffer = .init(capacity: 1_000_000, maxBatchSamples: 200)
        var logger = Logger(label: "agent.\(bot)")
        logger.logLevel = .warning
        return try MonitorAgent(configuration: c, logger: logger, onSeal: ledger.observer(bot: bot))
    }

    /// Records a round of trading metrics and flushes.
    static func trade(_ agent: MonitorAgent, round: Int) async {
        agent.counter("trades_executed").increment(by: Int64(round % 3 + 1))
        agent.gauge("daily_pnl").set(Double(round) * 0.25 - 3)
        agent.gauge("memory_usage_mb").set(150 + Double(round % 7) / 10)
        for i in 0..<(round % 4) { agent.duration("trade_execution_time").record(milliseconds: Double(40 + i)) }
        agent.state("websocket_status").set(round % 10 == 0 ? "reconnecting" : "connected")
        await agent.flush()
    }

    static func drained(_ agents: [MonitorAgent]) async -> Bool {
        for a in agents {
            let s = await a.status
            if s.unackedBatches > 0 || s.bufferedSamples > 0 { return false }
        }
        return true
    }

    /// PostgreSQL must hold exactly the sealed batches: same (bot, epoch, seq), same samples, one row each.
    static func expectExactlyOnce(_ sealed: [SealedLedger.Entry], _ db: TestDatabase) async throws {
        let stored = try await storedBatches(db)
        #expect(sealed.count > 0)
        #expect(Set(sealed).count == sealed.count)
        #expect(Set(stored.keys) == Set(sealed), "missing: \(Set(sealed).subtracting(stored.keys).count), unexpected: \(Set(stored.keys).subtracting(sealed).count)")
        #expect(stored.values.allSatisfy { $0 == 1 }, "a batch was stored more than once")
        let ledgerRows = try await db.withClient { client in
            try await client.query("SELECT COALESCE(sum(batches), 0)::int8 FROM ingest_streams", logger: Logger(label: "t")).decode(Int64.self).all()
        }
        #expect(ledgerRows == [Int64(sealed.count)])
    }

    /// A fresh database with `bots` registered, a running hub, and one running agent per bot.
    struct Fleet {
        let db: TestDatabase
        let hub: HubUnderTest
        let ledger = SealedLedger()
        let agents: [MonitorAgent]
        let tasks: [Task<Void, any Error>]

        init(bots: [String]) async throws {
            db = try await TestDatabase.create()
            try await registerBots(bots, token: "secret", in: db)
            hub = try HubUnderTest(database: db)
            try await hub.start()
            let (hub, ledger) = (hub, ledger)
            agents = try bots.map { try EndToEndTests.agent($0, hub: hub.agentURL, ledger: ledger) }
            tasks = agents.map { a in Task { try await a.run() } }
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func severalAgentsStoreExactlyWhatTheySent() async throws {
        let fleet = try await Fleet(bots: ["e2e-1", "e2e-2", "e2e-3"])
        let (db, hub, ledger, agents, tasks) = (fleet.db, fleet.hub, fleet.ledger, fleet.agents, fleet.tasks)
        for round in 0..<40 {
            for a in agents { await Self.trade(a, round: round) }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await eventually { await Self.drained(agents) })
        let sealed = ledger.all
        tasks.forEach { $0.cancel() }
        try await Self.expectExactlyOnce(sealed, db)
        await hub.kill(SIGTERM)
    }

    /// Agents speaking protocols 1, 2 and 3 (self-contained batches, v2 acks, delta batches) to one hub, recording
    /// the same metrics: PostgreSQL holds the same samples for each, every batch once.
    @Test(.timeLimit(.minutes(3)))
    func agentsOfEveryProtocolVersionStoreTheSameSamples() async throws {
        let bots = ["proto-1", "proto-2", "proto-3"]
        let db = try await TestDatabase.create()
        try await registerBots(bots, token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        let ledger = SealedLedger()
        let agents = try bots.enumerated().map { i, bot in
            try Self.agent(bot, hub: hub.agentURL, ledger: ledger, protocolVersion: UInt16(i + 1))
        }
        let tasks = agents.map { a in Task { try await a.run() } }
        for round in 0..<40 {
            if round == 20 { await hub.kill(SIGKILL); try await hub.start() }   // new connections, new delta contexts
            for a in agents { await Self.trade(a, round: round) }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await eventually(.seconds(60)) { await Self.drained(agents) })
        for (i, a) in agents.enumerated() { #expect(await a.status.protocolVersion == UInt16(i + 1)) }
        tasks.forEach { $0.cancel() }
        try await Self.expectExactlyOnce(ledger.all, db)
        let rows = try await db.withClient { client in
            let result = try await client.query("""
                SELECT bot, metric, kind, COALESCE(value::text, ''), COALESCE(state, '') FROM sample_points
                WHERE metric IN ('trades_executed', 'daily_pnl', 'memory_usage_mb', 'trade_execution_time', 'websocket_status')
                ORDER BY bot, metric, ts, value
                """, logger: Logger(label: "t"))
            var out: [(String, String, String, String, String)] = []
            for try await row in result.decode((String, String, String, String, String).self) { out.append(row) }
            return out
        }
        let byBot = Dictionary(grouping: rows, by: \.0).mapValues { $0.map { "\($0.1) \($0.2) \($0.3) \($0.4)" } }
        #expect(byBot["proto-1"]?.count ?? 0 > 100)
        #expect(byBot["proto-2"] == byBot["proto-1"])
        #expect(byBot["proto-3"] == byBot["proto-1"])
        await hub.kill(SIGTERM)
    }

    /// The hub is SIGKILLed twice while agents stream, then restarted: nothing lost, nothing duplicated.
    @Test(.timeLimit(.minutes(4)))
    func hubKilledMidStreamLosesAndDuplicatesNothing() async throws {
        let fleet = try await Fleet(bots: (1...4).map { "kill-\($0)" })
        let (db, hub, ledger, agents, tasks) = (fleet.db, fleet.hub, fleet.ledger, fleet.agents, fleet.tasks)
        for round in 0..<90 {
            if round == 30 || round == 60 {
                await hub.kill(SIGKILL)
                try await Task.sleep(for: .milliseconds(300))
                try await hub.start()
            }
            for a in agents { await Self.trade(a, round: round) }
            try await Task.sleep(for: .milliseconds(15))
        }
        #expect(try await eventually(.seconds(60)) { await Self.drained(agents) })
        let sealed = ledger.all
        var acked: Int64 = 0
        for a in agents { acked += await a.status.ackedBatches }
        tasks.forEach { $0.cancel() }
        try await Self.expectExactlyOnce(sealed, db)
        #expect(acked == Int64(sealed.count))
        await hub.kill(SIGTERM)
    }
}

/// A bot restarted during a hub outage still delivers what it recorded, through its spool.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct SpoolEndToEndTests {
    @Test(.timeLimit(.minutes(3)))
    func spooledBatchesAreDeliveredAfterARestart() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["spooler"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)   // not started yet: the hub is away
        let spool = NSTemporaryDirectory() + "fw-e2e-spool-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: spool) }
        let ledger = SealedLedger()
        func makeAgent() throws -> MonitorAgent {
            var c = AgentConfiguration(hubURL: hub.agentURL, botID: "spooler", token: "secret")
            c.flushInterval = .seconds(3600)
            c.processCollector = false
            c.spoolDirectory = spool
            c.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(300))
            return try MonitorAgent(configuration: c, onSeal: ledger.observer(bot: "spooler"))
        }
        // First run: records while the hub is down, then the bot process "dies".
        do {
            let first = try makeAgent()
            for round in 0..<10 { await EndToEndTests.trade(first, round: round) }
            #expect(await first.status.unackedBatches == 10)
        }
        let recorded = ledger.all
        // Second run: the hub is back; the new agent delivers the old epoch's batches, then its own.
        try await hub.start()
        let second = try makeAgent()
        let task = Task { try await second.run() }
        for round in 10..<15 { await EndToEndTests.trade(second, round: round) }
        #expect(try await eventually { await EndToEndTests.drained([second]) })
        let sealed = ledger.all
        // The files of acknowledged batches are deleted off the agent's actor, in order after their writes.
        var leftover: [String] = []
        _ = try await eventually(.seconds(10)) {
            leftover = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".batch") }
            return leftover.isEmpty
        }
        #expect(leftover.isEmpty, "acknowledged batches stay in the spool: \(leftover)")
        task.cancel()
        #expect(Set(recorded).isSubset(of: Set(sealed)))
        try await EndToEndTests.expectExactlyOnce(sealed, db)
        await hub.kill(SIGTERM)
    }
}
