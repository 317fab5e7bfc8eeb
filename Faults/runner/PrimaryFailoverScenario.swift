import FleetwatchProtocol
import FleetwatchAgent
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation

/// Two hub replicas on a primary with a synchronous streaming standby, addressed as libpq does
/// (`host1,host2 … target_session_attrs=read-write`); agents stream, a stop waits for an offline bot; the primary
/// is SIGKILLed and the standby promoted. Asserted: every acknowledged batch is on the new primary exactly once
/// (synchronous replication: an ack means committed on both), ingest resumes by itself, the pending stop completes.
struct PrimaryFailoverScenario {
    let h: Harness
    let full: Bool
    let pgScript: String

    func run() async throws -> Report {
        var r = Report(scenario: "primary-failover")
        let primary = PrivatePostgres(script: pgScript, directory: "\(h.logDir)/fault-pg-\(UUID().uuidString.prefix(8))", logDir: h.logDir)
        let server = try await primary.start()
        return try await primary.removing {
            let h = Harness(server: server, binDir: self.h.binDir, logDir: self.h.logDir, logger: self.h.logger)
            let bots = (1...4).map { "fo-\($0)" }
            let db = try await h.database(bots + ["fo-cmd"])
            let (standby, standbyServer) = try await primary.standby(in: "\(h.logDir)/fault-pg-standby-\(UUID().uuidString.prefix(8))", synchronous: true)
            return try await standby.removing {
                let both = "postgres://\(db.url.username)@127.0.0.1:\(server.port),127.0.0.1:\(standbyServer.port)/\(db.url.database)?target_session_attrs=read-write"
                var onStandby = db.url
                onStandby.endpoints = [.init(host: "127.0.0.1", port: standbyServer.port)]
                let newPrimary = TestDatabase(url: onStandby)

                let ports = [try freeTCPPort(), try freeTCPPort()]
                let hubs = try ports.enumerated().map { try h.hub(db, port: $1, name: "hub-\($0)", config: #"{"emergency": {"poll_interval": 1}}"#, databaseURL: both) }
                defer { hubs.forEach { _ = kill($0.pid, SIGKILL) } }
                for p in ports { try await h.waitReady(port: p) }
                let ledger = Ledger()
                let agents = try bots.enumerated().map { try h.agent($1, port: ports[$0 % 2], ledger: ledger) }
                let streaming = Streaming(agents)
                defer { streaming.stop() }
                func acked() async -> Int64 { var n: Int64 = 0; for a in agents { n += await a.status.ackedBatches }; return n }

                // A stop for a bot that is offline: it waits in the ledger (replicated).
                let (status, body) = try await ReplicasRestartScenario.post(port: ports[0], path: "/api/bots/fo-cmd/emergency-stop",
                                                                           body: #"{"reason": "fault suite: stop across a failover"}"#)
                guard status == 202, let id = StopDuringOutageScenario.json(body)["id"] as? String else { throw FaultError("stop answered \(status): \(body)") }
                try await Task.sleep(for: full ? .seconds(10) : .seconds(3))

                // The primary dies; the standby is promoted (what an operator or pg_auto_failover does).
                try await primary.run("kill")
                let killed = ContinuousClock.now
                try await Task.sleep(for: .milliseconds(300))
                let ackedAtKill = await acked()
                try await Task.sleep(for: .seconds(1))
                try await standby.run("promote")
                let promoted = ContinuousClock.now
                var resumed: Double?
                while resumed == nil, ContinuousClock.now < promoted + .seconds(60) {
                    if await acked() > ackedAtKill + 4 { resumed = (ContinuousClock.now - promoted).inSeconds }
                    try await Task.sleep(for: .milliseconds(50))
                }
                // The offline bot comes online now: its stop must reach it through the new primary.
                let handler = ReplicasRestartScenario.CountingHandler()
                let cmdAgent = try h.agent("fo-cmd", port: ports[1], ledger: ledger)
                await cmdAgent.setEmergencyHandler(handler)
                let cmdRun = Task { try await cmdAgent.run() }
                defer { cmdRun.cancel() }
                try await Task.sleep(for: .seconds(2))
                streaming.recorder.cancel()
                let drained = try await h.drain(agents, ledger: ledger)
                let count = try await h.compare(drained, newPrimary)
                var state = ""
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline, state != "completed" {
                    let (s, b) = (try? await ReplicasRestartScenario.get(port: ports[1], path: "/api/commands/\(id)")) ?? (0, "")
                    if s == 200 { state = StopDuringOutageScenario.json(b)["state"] as? String ?? "" }
                    try await Task.sleep(for: .milliseconds(200))
                }
                let moved = hubs.map { $0.log.contains("moved to 127.0.0.1:\(standbyServer.port)") }
                r.figure("replication", "synchronous streaming standby (synchronous_standby_names), promoted with pg_ctl promote 1 s after the primary's SIGKILL")
                r.figure("replicas that moved to the new primary by themselves", "\(moved.filter { $0 }.count) of \(hubs.count)")
                r.figure("ingest resumed after the promotion", resumed.map { String(format: "%.2f s (%.2f s after the kill)", $0, $0 + (promoted - killed).inSeconds) } ?? "never")
                r.figure("pending stop after the failover", "\(state); steps \(handler.all.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "))")
                r.check(moved.allSatisfy { $0 }, "a replica did not move to the promoted standby: \(moved)")
                r.check(resumed != nil, "ingest did not resume within 60 s of the promotion")
                r.check(state == "completed" && handler.all == ["stop_trading": 1, "cancel_orders": 1, "latch_emergency": 1],
                        "the pending stop: \(state), steps \(handler.all)")
                r.counts(count)
                for hub in hubs { _ = await hub.stop(signal: SIGTERM) }
                return r
            }
        }
    }
}
