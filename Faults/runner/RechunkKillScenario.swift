import FleetwatchTestSupport
import Foundation
import PostgresNIO

/// The hub SIGKILLed again and again while its review upkeep merges closed minutes into one row per bot
/// (schema 0009; here every second, once a minute is 5 s old), with a dozen agents streaming: every batch is
/// stored exactly once, merged or not, and minutes merged before their last batches arrived are merged again.
struct RechunkKillScenario {
    let h: Harness
    let full: Bool

    func run() async throws -> Report {
        var r = Report(scenario: "rechunk-kill")
        let bots = (1...12).map { "chunk-\($0)" }
        let db = try await h.database(bots)
        let port = try freeTCPPort()
        let config = #"{"retention": {"rollup_interval": 1, "rechunk_after": 5}}"#
        var hub = try h.hub(db, port: port, name: "hub", config: config)
        try await h.waitReady(port: port)
        let ledger = Ledger()
        let agents = try bots.map { try h.agent($0, port: port, ledger: ledger) }
        let streaming = Streaming(agents)
        defer { streaming.stop() }
        // Until the first minute closes and is merged (at most 70 s); then kills while the upkeep merges each second.
        var mergedBeforeKills = 0
        for _ in 0..<140 where mergedBeforeKills == 0 {
            try await Task.sleep(for: .milliseconds(500))
            mergedBeforeKills = try await mergedRows(db)
        }
        let kills = full ? 10 : 4
        for _ in 1...kills {
            try await Task.sleep(for: .milliseconds(Int64.random(in: 700...2500)))
            _ = await hub.stop(signal: SIGKILL)
            try await Task.sleep(for: .milliseconds(300))
            hub = try h.hub(db, port: port, name: "hub", config: config)
            try await h.waitReady(port: port)
        }
        try await Task.sleep(for: .seconds(4))
        streaming.recorder.cancel()
        let drained = try await h.drain(agents, ledger: ledger)
        let count = try await h.compare(drained, db)
        let merged = try await mergedRows(db)
        _ = await hub.stop(signal: SIGTERM)
        r.figure("agents", agents.count)
        r.figure("SIGKILLs of the hub while it merges", kills)
        r.figure("merged minute rows (at the first kill / at the end)", "\(mergedBeforeKills) / \(merged)")
        r.counts(count)
        r.check(merged > 0, "no minute was merged: the scenario did not test merging")
        let sealedEver = ledger.all
        let unexpected = try await h.stored(db).keys.filter { sealedEver[$0] == nil }.count
        r.check(unexpected == 0, "\(unexpected) stored batches no agent sealed")
        return r
    }

    /// Rows that hold merged minutes (their samples carry their batches' sequence numbers).
    func mergedRows(_ db: TestDatabase) async throws -> Int {
        try await h.scalar(db, Int64.self, "SELECT count(*) FROM samples WHERE seqs IS NOT NULL OR state_seqs IS NOT NULL").map(Int.init) ?? 0
    }
}
