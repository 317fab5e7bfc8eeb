import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation

/// The hub SIGKILLed again and again while a dozen agents stream, restarted each time on the same port.
struct HubKillScenario {
    let h: Harness
    let full: Bool

    func run() async throws -> Report {
        var r = Report(scenario: "hub-kill")
        let bots = (1...12).map { "kill-\($0)" }
        let db = try await h.database(bots)
        let port = try freeTCPPort()
        var hub = try h.hub(db, port: port, name: "hub")
        try await h.waitReady(port: port)
        let ledger = Ledger()
        let agents = try bots.map { try h.agent($0, port: port, ledger: ledger) }
        let streaming = Streaming(agents)
        defer { streaming.stop() }
        let kills = full ? 10 : 3
        var downtime = 0.0
        for _ in 1...kills {
            try await Task.sleep(for: .milliseconds(Int64.random(in: 1500...4000)))
            _ = await hub.stop(signal: SIGKILL)
            let down = ContinuousClock.now
            try await Task.sleep(for: .milliseconds(300))
            hub = try h.hub(db, port: port, name: "hub")
            try await h.waitReady(port: port)
            downtime += (ContinuousClock.now - down).inSeconds
        }
        try await Task.sleep(for: .seconds(3))
        streaming.recorder.cancel()
        let drained = try await h.drain(agents, ledger: ledger)
        let count = try await h.compare(drained, db)
        _ = await hub.stop(signal: SIGTERM)
        r.figure("agents", agents.count)
        r.figure("SIGKILLs of the hub", "\(kills) (down \(String(format: "%.1f", downtime)) s in all)")
        r.counts(count)
        // Against everything ever sealed (a timer flush after the drain may seal and store one more batch).
        let sealedEver = ledger.all
        let unexpected = try await h.stored(db).keys.filter { sealedEver[$0] == nil }.count
        r.check(unexpected == 0, "\(unexpected) stored batches no agent sealed")
        return r
    }
}
