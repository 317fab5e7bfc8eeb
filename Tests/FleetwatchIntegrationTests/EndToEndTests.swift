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
    static func agent(_ bot: String, hub: String, ledger: SealedLedger, token: String = "secret") throws -> MonitorAgent {
        var c = AgentConfiguration(hubURL: hub, botID: bot, token: token)
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
            try await client.query("SELECT count(*) FROM ingest_batches", logger: Logger(label: "t")).decode(Int64.self).all()
        }
        #expect(ledgerRows == [Int64(sealed.count)])
    }

    @Test(.timeLimit(.minutes(3)))
    func severalAgentsStoreExactlyWhatTheySent() async throws {
        let db = try await TestDatabase.create()
        let bots = ["e2e-1", "e2e-2", "e2e-3"]
        try await registerBots(bots, token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        let ledger = SealedLedger()
        let agents = try bots.map { try Self.agent($0, hub: hub.agentURL, ledger: ledger) }
        let tasks = agents.map { a in Task { try await a.run() } }
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

    /// The hub is SIGKILLed twice while agents stream, then restarted: nothing lost, nothing duplicated.
    @Test(.timeLimit(.minutes(4)))
    func hubKilledMidStreamLosesAndDuplicatesNothing() async throws {
        let db = try await TestDatabase.create()
        let bots = (1...4).map { "kill-\($0)" }
        try await registerBots(bots, token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        let ledger = SealedLedger()
        let agents = try bots.map { try Self.agent($0, hub: hub.agentURL, ledger: ledger) }
        let tasks = agents.map { a in Task { try await a.run() } }
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
