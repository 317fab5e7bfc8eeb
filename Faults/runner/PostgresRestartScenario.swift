import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation

/// PostgreSQL stopped under a streaming hub and started again: nothing is acknowledged while it is down
/// (an ack means committed), the hub recovers by itself, and every batch is stored exactly once.
struct PostgresRestartScenario {
    let h: Harness
    let full: Bool
    let pgScript: String

    func run() async throws -> Report {
        var r = Report(scenario: "postgres-restart")
        let outage: Duration = full ? .seconds(30) : .seconds(10)
        let pg = PrivatePostgres(script: pgScript, directory: "\(h.logDir)/fault-pg-\(UUID().uuidString.prefix(8))", logDir: h.logDir)
        let server = try await pg.start()
        return try await pg.removing {
            let h = Harness(server: server, binDir: self.h.binDir, logDir: self.h.logDir, logger: self.h.logger)
            let bots = (1...5).map { "pg-\($0)" }
            let db = try await h.database(bots)
            let port = try freeTCPPort()
            let hub = try h.hub(db, port: port, name: "hub")
            try await h.waitReady(port: port)
            let ledger = Ledger()
            let agents = try bots.map { try h.agent($0, port: port, ledger: ledger) }
            let streaming = Streaming(agents)
            defer { streaming.stop() }
            func acked() async -> Int64 { var n: Int64 = 0; for a in agents { n += await a.status.ackedBatches }; return n }
            try await Task.sleep(for: .seconds(3))

            let stopped = ContinuousClock.now
            try await pg.stop()
            try await Task.sleep(for: .milliseconds(300))   // acks of commits that finished before the stop
            let ackedWhenDown = await acked()
            var ackedDuringOutage: Int64 = 0
            var unready: Double?
            var disconnected = 0
            let end = ContinuousClock.now + outage
            while ContinuousClock.now < end {
                ackedDuringOutage = max(ackedDuringOutage, await acked() - ackedWhenDown)
                if unready == nil, (try? await ReplicasRestartScenario.get(port: port, path: "/health/ready"))?.0 == 503 {
                    unready = (ContinuousClock.now - stopped).inSeconds
                }
                if unready != nil { for a in agents where !(await a.status.connected) { disconnected += 1 } }
                try await Task.sleep(for: .milliseconds(100))
            }
            let buffered = await agents.asyncSum { await $0.status.unackedBatches }
            try await pg.start()
            let restarted = ContinuousClock.now
            var recovery: Double?
            while recovery == nil, ContinuousClock.now < restarted + .seconds(120) {
                if await acked() > ackedWhenDown + ackedDuringOutage { recovery = (ContinuousClock.now - restarted).inSeconds }
                try await Task.sleep(for: .milliseconds(50))
            }
            // Stopped again, briefly, several times: with the agents sending every 200 ms each stop catches statements
            // in flight, and a statement the stop leaves unanswered must not keep the hub from storing afterwards.
            var quick: [Double?] = []
            for _ in 0..<(full ? 15 : 5) {
                try await pg.stop()
                try await Task.sleep(for: .seconds(1))
                let down = await acked()
                let started = ContinuousClock.now
                try await pg.start()
                var back: Double?
                while back == nil, ContinuousClock.now < started + .seconds(60) {
                    if await acked() > down { back = (ContinuousClock.now - started).inSeconds }
                    try await Task.sleep(for: .milliseconds(50))
                }
                quick.append(back)
            }
            try await Task.sleep(for: .seconds(2))
            streaming.recorder.cancel()
            let drained = try await h.drain(agents, ledger: ledger)
            let count = try await h.compare(drained, db)
            let hubAlive = hub.isRunning
            _ = await hub.stop(signal: SIGTERM)
            r.figure("PostgreSQL down", "\((outage).inSeconds) s (fast shutdown, then started again)")
            r.figure("readiness unhealthy after", unready.map { String(format: "%.2f s", $0) } ?? "never")
            r.figure("agent connections kept open through the outage (their batches evaluated, not acknowledged)",
                     disconnected == 0 ? "all \(agents.count)" : "no: \(disconnected) disconnected samples")
            r.figure("batches acknowledged while it was down", ackedDuringOutage)
            r.figure("unacknowledged batches held by the agents at the end of the outage", buffered)
            r.figure("first acknowledgement after PostgreSQL was back", recovery.map { String(format: "%.2f s", $0) } ?? "never")
            r.check(unready != nil && unready! <= 6, "readiness did not turn unhealthy within 6 s of the stop")
            r.check(disconnected == 0, "agents lost their connection during the outage (the stop cannot reach them)")
            r.check(ackedDuringOutage == 0, "\(ackedDuringOutage) batches acknowledged while PostgreSQL was down")
            r.figure("first acknowledgement after each quick restart (1 s down; from the start command, which waits for the server)",
                     quick.map { $0.map { String(format: "%.2f s", $0) } ?? "never" }.joined(separator: ", "))
            r.check(recovery != nil, "the hub did not recover within 120 s")
            r.check(quick.allSatisfy { $0 != nil }, "the hub stored nothing within 60 s after a quick restart")
            r.check(hubAlive, "the hub process exited")
            r.counts(count)
            return r
        }
    }
}

extension Array {
    func asyncSum(_ f: (Element) async -> Int) async -> Int {
        var n = 0
        for e in self { n += await f(e) }
        return n
    }
}
