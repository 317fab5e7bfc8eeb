import FleetwatchProtocol
import FleetwatchAgent
import FleetwatchTestSupport
import Foundation
import Synchronization

/// PostgreSQL stopped; an operator stops a bot through the replica holding its connection (break glass): the
/// stop reaches the bot, every step runs once, the operator sees the step results, and once PostgreSQL is back
/// the ledger holds the command with its steps and audit rows exactly once. The other replica answers with an
/// error naming the holder. A second stop is followed by a SIGKILL of the holding replica; its journal on disk
/// carries the command into the ledger when it is restarted.
struct StopDuringOutageScenario {
    let h: Harness
    let full: Bool
    let pgScript: String

    /// Counts steps and notes when the first one ran.
    final class TimedHandler: EmergencyHandler {
        let calls = Mutex<[String: Int]>([:])
        let firstAt = Mutex<ContinuousClock.Instant?>(nil)
        func count(_ step: String) -> String {
            firstAt.withLock { if $0 == nil { $0 = .now } }
            calls.withLock { $0[step, default: 0] += 1 }
            return "done"
        }
        func stopTrading() async throws -> String { count("stop_trading") }
        func cancelOpenOrders() async throws -> String { count("cancel_orders") }
        func setEmergencyMode() async throws -> String { count("latch_emergency") }
        var all: [String: Int] { calls.withLock { $0 } }
    }

    static func json(_ body: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:]
    }

    func run() async throws -> Report {
        var r = Report(scenario: "stop-during-outage")
        let pg = PrivatePostgres(script: pgScript, directory: "\(h.logDir)/fault-pg-\(UUID().uuidString.prefix(8))", logDir: h.logDir)
        let server = try await pg.start()
        return try await pg.removing {
            let h = Harness(server: server, binDir: self.h.binDir, logDir: self.h.logDir, logger: self.h.logger)
            let bots = ["glass-1", "glass-2"]
            let db = try await h.database(bots + ["glass-alert"])
            let webhook = ReplicasRestartScenario.Webhook()
            let (hookPort, hookTask) = try await webhook.start()
            defer { hookTask.cancel() }
            let config = """
                {"emergency": {"poll_interval": 1},
                 "alerts": {"console_alerts": false, "webhook_notifications": true, "no_data_seconds": 600,
                            "webhook": {"url": "http://127.0.0.1:\(hookPort)/hook", "min_level": "INFO"}}}
                """
            let ports = [try freeTCPPort(), try freeTCPPort()]
            var hubA = try h.hub(db, port: ports[0], name: "hub-a", config: config)
            let hubB = try h.hub(db, port: ports[1], name: "hub-b", config: config)
            defer { _ = kill(hubA.pid, SIGKILL); _ = kill(hubB.pid, SIGKILL) }
            for p in ports { try await h.waitReady(port: p) }
            let ledger = Ledger()
            let handlers = bots.map { _ in TimedHandler() }
            var agents: [MonitorAgent] = []
            for (bot, handler) in zip(bots, handlers) {
                let a = try h.agent(bot, port: ports[0], ledger: ledger)
                await a.setEmergencyHandler(handler)
                agents.append(a)
            }
            // A bot that crosses its memory threshold during the outage.
            let alertAgent = try h.agent("glass-alert", port: ports[0], ledger: ledger)
            alertAgent.gauge("memory_usage_mb").set(200)
            let runs = (agents + [alertAgent]).map { a in Task { try await a.run() } }
            defer { runs.forEach { $0.cancel() } }
            // Both replicas verify the operator's token, and learn who holds the bots, before the outage.
            try await Task.sleep(for: .seconds(2))
            for p in ports {
                let (status, _) = try await ReplicasRestartScenario.get(port: p, path: "/api/bots")
                guard status == 200 else { throw FaultError("GET /api/bots answered \(status) before the outage") }
            }

            try await pg.stop()
            let stopped = ContinuousClock.now
            while ContinuousClock.now < stopped + .seconds(15),
                  (try? await ReplicasRestartScenario.get(port: ports[0], path: "/health/ready"))?.0 != 503 {
                try await Task.sleep(for: .milliseconds(100))
            }
            // The alert: evaluated on arrival and sent while the database is down.
            alertAgent.gauge("memory_usage_mb").set(900)
            let crossed = ContinuousClock.now
            while ContinuousClock.now < crossed + .seconds(15), webhook.fired.withLock({ $0.values.reduce(0, +) }) == 0 {
                try await Task.sleep(for: .milliseconds(100))
            }
            let firedDuringOutage = webhook.fired.withLock { $0.values.reduce(0, +) }
            // The replica not holding the bot: a clear refusal naming the holder.
            let (otherStatus, otherBody) = try await ReplicasRestartScenario.post(port: ports[1], path: "/api/bots/glass-1/emergency-stop",
                                                                                 body: #"{"reason": "fault suite: wrong replica"}"#)
            let otherMessage = (Self.json(otherBody)["error"] as? [String: Any])?["message"] as? String ?? otherBody
            // The holding replica: journalled, sent, run.
            let asked = ContinuousClock.now
            let (status, body) = try await ReplicasRestartScenario.post(port: ports[0], path: "/api/bots/glass-1/emergency-stop",
                                                                       body: #"{"reason": "fault suite: stop while the database is down"}"#,
                                                                       key: "glass-1-outage")
            guard status == 202, let id = Self.json(body)["id"] as? String else { throw FaultError("break-glass stop answered \(status): \(body)") }
            var shown = ""
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                let (s, b) = (try? await ReplicasRestartScenario.get(port: ports[0], path: "/api/commands/\(id)")) ?? (0, "")
                if s == 200, let state = Self.json(b)["state"] as? String { shown = state }
                if shown == "completed" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let toHandler = handlers[0].firstAt.withLock { $0 }.map { ($0 - asked).inSeconds }
            // The same request again (same Idempotency-Key): the same command.
            let (againStatus, againBody) = try await ReplicasRestartScenario.post(port: ports[0], path: "/api/bots/glass-1/emergency-stop",
                                                                                 body: #"{"reason": "fault suite: stop while the database is down"}"#,
                                                                                 key: "glass-1-outage")
            // A second stop, then the holding replica is killed and restarted once PostgreSQL is back.
            let (status2, body2) = try await ReplicasRestartScenario.post(port: ports[0], path: "/api/bots/glass-2/emergency-stop",
                                                                         body: #"{"reason": "fault suite: stop, then the replica dies"}"#)
            guard status2 == 202, let id2 = Self.json(body2)["id"] as? String else { throw FaultError("second stop answered \(status2): \(body2)") }
            _ = await hubA.stop(signal: SIGKILL)
            try await Task.sleep(for: full ? .seconds(20) : .seconds(3))
            try await pg.start()
            hubA = try h.hub(db, port: ports[0], name: "hub-a", config: config)
            try await h.waitReady(port: ports[0])

            // The ledger, through the other replica: both commands completed.
            var states: [String: String] = [:]
            let settle = ContinuousClock.now + .seconds(90)
            while ContinuousClock.now < settle {
                for c in [id, id2] {
                    let (s, b) = (try? await ReplicasRestartScenario.get(port: ports[1], path: "/api/commands/\(c)")) ?? (0, "")
                    if s == 200 { states[c] = Self.json(b)["state"] as? String }
                }
                if states[id] == "completed", states[id2] == "completed" { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            try await Task.sleep(for: .seconds(3))   // room for a second execution or row to show
            let rows = Int(try await h.scalar(db, Int64.self, "SELECT count(*) FROM commands") ?? -1)
            let requested = Int(try await h.scalar(db, Int64.self, "SELECT count(*) FROM audit_log WHERE action = 'emergency_stop.requested'") ?? -1)
            let delivered = Int(try await h.scalar(db, Int64.self, "SELECT count(*) FROM audit_log WHERE action = 'command.delivered'") ?? -1)
            let steps = Int(try await h.scalar(db, Int64.self, "SELECT count(*) FROM command_steps WHERE command_id = \(UUID(uuidString: id)!)") ?? -1)
            let distinctSteps = Int(try await h.scalar(db, Int64.self, "SELECT count(DISTINCT (step, status)) FROM command_steps WHERE command_id = \(UUID(uuidString: id)!)") ?? -1)
            let latched = Int(try await h.scalar(db, Int64.self, "SELECT count(*) FROM bots WHERE emergency_command_id IS NOT NULL") ?? -1)
            var alertRows = 0
            let alertDeadline = ContinuousClock.now + .seconds(20)
            repeat {
                alertRows = Int(try await h.scalar(db, Int64.self, "SELECT count(*) FROM alerts WHERE rule_id = 'memory_usage_mb'") ?? -1)
                if alertRows > 0 { break }
                try await Task.sleep(for: .milliseconds(250))
            } while ContinuousClock.now < alertDeadline
            try await Task.sleep(for: .seconds(2))
            let firedInAll = webhook.fired.withLock { $0.values.reduce(0, +) }

            r.figure("the other replica answered", "\(otherStatus): \(otherMessage)")
            r.figure("stop request → bot's first step, database down", toHandler.map { String(format: "%.3f s", $0) } ?? "never")
            r.figure("state shown by the holding replica during the outage", shown)
            r.figure("same Idempotency-Key again", "\(againStatus), same command: \(Self.json(againBody)["id"] as? String == id)")
            r.figure("after PostgreSQL returned and the killed replica restarted", "\(states[id] ?? "?") / \(states[id2] ?? "?"); \(rows) command rows, \(requested) requested + \(delivered) delivered audit rows, \(steps) step rows, \(latched) bots latched")
            r.figure("memory alert: webhook POSTs during the outage / in all, alert rows afterwards", "\(firedDuringOutage) / \(firedInAll), \(alertRows)")
            r.figure("steps run per bot", handlers.map { h in h.all.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ") }
                .joined(separator: "; "))
            r.check(otherStatus == 503 && otherMessage.contains("hub-a"), "the other replica answered \(otherStatus): \(otherMessage)")
            r.check(shown == "completed", "the holding replica showed \(shown) during the outage")
            r.check(againStatus == 200 && Self.json(againBody)["id"] as? String == id, "a repeated request answered \(againStatus): \(againBody)")
            r.check(states[id] == "completed" && states[id2] == "completed", "commands not completed in the ledger: \(states)")
            r.check(rows == 2 && requested == 2 && delivered == 2, "ledger rows: \(rows) commands, \(requested) requested, \(delivered) delivered")
            r.check(steps == distinctSteps && steps >= 4, "\(steps) step rows (\(distinctSteps) distinct) for the first command")
            r.check(latched == 2, "\(latched) bots latched in emergency mode")
            r.check(firedDuringOutage == 1 && firedInAll == 1 && alertRows == 1,
                    "memory alert: \(firedDuringOutage) POSTs during the outage, \(firedInAll) in all, \(alertRows) alert rows")
            for (bot, handler) in zip(bots, handlers) {
                r.check(handler.all == ["stop_trading": 1, "cancel_orders": 1, "latch_emergency": 1], "\(bot) ran \(handler.all)")
            }
            _ = await hubA.stop(signal: SIGTERM)
            _ = await hubB.stop(signal: SIGTERM)
            return r
        }
    }
}
