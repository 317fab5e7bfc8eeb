import FleetwatchProtocol
import FleetwatchTestSupport
import AsyncHTTPClient
import FleetwatchAgent
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// Two hub replicas on one PostgreSQL, which is restarted while emergency stops wait for offline bots and
/// bots cross an alert threshold: afterwards every command ran exactly once on its bot and every alert
/// fired and was sent to the webhook exactly once. The tables are the truth; the NOTIFYs lost with the
/// restart change nothing.
struct ReplicasRestartScenario {
    let h: Harness
    let full: Bool
    let pgScript: String

    /// Counts each emergency step the bot runs.
    final class CountingHandler: EmergencyHandler {
        let calls = Mutex<[String: Int]>([:])
        func count(_ step: String) -> String { calls.withLock { $0[step, default: 0] += 1 }; return "done" }
        func stopTrading() async throws -> String { count("stop_trading") }
        func cancelOpenOrders() async throws -> String { count("cancel_orders") }
        func setEmergencyMode() async throws -> String { count("latch_emergency") }
        var all: [String: Int] { calls.withLock { $0 } }
    }

    /// A webhook receiver counting `fired` notifications per alert id.
    final class Webhook: @unchecked Sendable {
        let fired = Mutex<[Int: Int]>([:])
        /// `fired` POSTs per bot (alerts notified during a database outage carry a provisional id).
        let firedByBot = Mutex<[String: Int]>([:])
        func start() async throws -> (Int, Task<Void, any Error>) {
            let router = Router()
            router.post("/hook") { request, _ -> HTTPResponse.Status in
                let body = try await request.body.collect(upTo: 1 << 20)
                if let json = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                   json["event"] as? String == "fired", json["rule"] as? String == "memory_usage_mb",
                   let id = json["alert_id"] as? NSNumber {
                    self.fired.withLock { $0[id.intValue, default: 0] += 1 }
                    if let bot = json["bot"] as? String { self.firedByBot.withLock { $0[bot, default: 0] += 1 } }
                }
                return .ok
            }
            let port = try freeTCPPort()
            var logger = Logger(label: "webhook")
            logger.logLevel = .critical
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
            return (port, Task { try await app.runService(gracefulShutdownSignals: []) })
        }
    }

    func run() async throws -> Report {
        var r = Report(scenario: "replicas-postgres-restart")
        let outage: Duration = full ? .seconds(30) : .seconds(8)
        let pg = PrivatePostgres(script: pgScript, directory: "\(h.logDir)/fault-pg-\(UUID().uuidString.prefix(8))", logDir: h.logDir)
        let server = try await pg.start()
        return try await pg.removing {
            let h = Harness(server: server, binDir: self.h.binDir, logDir: self.h.logDir, logger: self.h.logger)
            let cmdBots = (1...3).map { "cmd-\($0)" }, alertBots = (1...3).map { "alert-\($0)" }
            let db = try await h.database(cmdBots + alertBots)
            let webhook = Webhook()
            let (hookPort, hookTask) = try await webhook.start()
            defer { hookTask.cancel() }
            let config = """
                {"alerts": {"console_alerts": false, "webhook_notifications": true, "no_data_seconds": 600,
                            "webhook": {"url": "http://127.0.0.1:\(hookPort)/hook", "min_level": "INFO"}},
                 "emergency": {"poll_interval": 1}}
                """
            let ports = [try freeTCPPort(), try freeTCPPort()]
            let hubs = [try h.hub(db, port: ports[0], name: "hub-a", config: config), try h.hub(db, port: ports[1], name: "hub-b", config: config)]
            defer { hubs.forEach { _ = kill($0.pid, SIGKILL) } }
            for p in ports { try await h.waitReady(port: p) }
            let ledger = Ledger()
            // Bots crossing the memory threshold, on both replicas.
            let alertAgents = try alertBots.enumerated().map { try h.agent($1, port: ports[$0 % 2], ledger: ledger) }
            let alertRuns = alertAgents.map { a in Task { try await a.run() } }
            defer { alertRuns.forEach { $0.cancel() } }
            for a in alertAgents { a.gauge("memory_usage_mb").set(200) }
            try await Task.sleep(for: .seconds(1))

            // Stops for bots that are offline: they wait in the ledger.
            var ids: [String: String] = [:]
            for (i, bot) in cmdBots.enumerated() {
                let (status, body) = try await Self.post(port: ports[i % 2], path: "/api/bots/\(bot)/emergency-stop",
                                                         body: #"{"reason": "fault suite: stop across a database restart"}"#)
                guard status == 202, let id = (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["id"] as? String else {
                    throw FaultError("stop for \(bot) answered \(status): \(body)")
                }
                ids[bot] = id
            }

            try await pg.stop()
            // While PostgreSQL is down: the stopped bots come online (and cannot be authenticated yet), the others
            // cross their memory threshold (their batches cannot be stored yet).
            let handlers = cmdBots.map { _ in CountingHandler() }
            var cmdAgents: [MonitorAgent] = []
            for (i, bot) in cmdBots.enumerated() {
                let a = try h.agent(bot, port: ports[(i + 1) % 2], ledger: ledger)
                await a.setEmergencyHandler(handlers[i])
                cmdAgents.append(a)
            }
            let cmdRuns = cmdAgents.map { a in Task { try await a.run() } }
            defer { cmdRuns.forEach { $0.cancel() } }
            for a in alertAgents { a.gauge("memory_usage_mb").set(900) }
            try await Task.sleep(for: outage)
            try await pg.start()
            let restarted = ContinuousClock.now

            // Wait for the commands to complete and the alerts to be sent.
            var states: [String: String] = [:]
            var firing = 0
            let deadline = restarted + .seconds(150)
            while ContinuousClock.now < deadline {
                for (bot, id) in ids {
                    let (status, body) = (try? await Self.get(port: ports[0], path: "/api/commands/\(id)")) ?? (0, "")
                    if status == 200 { states[bot] = (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["state"] as? String }
                }
                firing = Int(try await h.scalar(db, Int64.self, "SELECT count(*) FROM alerts WHERE rule_id = 'memory_usage_mb' AND state = 'firing'") ?? 0)
                if states.values.filter({ $0 == "completed" }).count == ids.count, firing == alertBots.count,
                   webhook.firedByBot.withLock({ $0.count }) == alertBots.count { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            let settled = (ContinuousClock.now - restarted).inSeconds
            try await Task.sleep(for: .seconds(5))   // room for any second execution or notification to show
            let alertRows = Int(try await h.scalar(db, Int64.self, "SELECT count(*) FROM alerts WHERE rule_id = 'memory_usage_mb'") ?? -1)
            let webhookDeliveries = Int(try await h.scalar(db, Int64.self, """
                SELECT count(*) FROM notifications n JOIN alerts a ON a.id = n.alert_id
                WHERE n.channel = 'webhook' AND n.event = 'fired' AND n.outcome = 'delivered' AND a.rule_id = 'memory_usage_mb'
                """) ?? -1)
            let commandRows = Int(try await h.scalar(db, Int64.self, "SELECT count(*) FROM commands") ?? -1)
            let fired = webhook.firedByBot.withLock { $0 }
            r.figure("PostgreSQL down", "\((outage).inSeconds) s, with 3 stops pending and 3 bots crossing a threshold")
            r.figure("commands completed", "\(states.values.filter { $0 == "completed" }.count) of \(ids.count), \(commandRows) command rows")
            r.figure("steps run per bot", handlers.map { h in h.all.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ") }
                .joined(separator: "; "))
            r.figure("memory alerts fired / webhook POSTs per bot / delivery rows", "\(alertRows) / \(fired.values.sorted().map(String.init).joined(separator: ",")) / \(webhookDeliveries)")
            r.figure("everything settled after PostgreSQL was back", String(format: "%.1f s", settled))
            r.check(states.values.allSatisfy { $0 == "completed" } && states.count == ids.count, "commands not completed: \(states)")
            for (bot, handler) in zip(cmdBots, handlers) {
                r.check(handler.all == ["stop_trading": 1, "cancel_orders": 1, "latch_emergency": 1], "\(bot) ran \(handler.all)")
            }
            r.check(commandRows == ids.count, "\(commandRows) command rows for \(ids.count) stops")
            r.check(alertRows == alertBots.count, "\(alertRows) memory alerts for \(alertBots.count) bots")
            r.check(fired.count == alertBots.count && fired.values.allSatisfy { $0 == 1 }, "webhook fired notifications per bot: \(fired)")
            // Alerts notified during the outage have no delivery row (the ledger was down); none has two.
            r.check(webhookDeliveries <= alertBots.count, "\(webhookDeliveries) webhook deliveries recorded for \(alertBots.count) alerts")
            for hub in hubs { _ = await hub.stop(signal: SIGTERM) }
            return r
        }
    }

    static func post(port: Int, path: String, body: String, key: String? = nil) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(Harness.operatorToken)")
        request.headers.add(name: "Content-Type", value: "application/json")
        if let key { request.headers.add(name: "Idempotency-Key", value: key) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    static func get(port: Int, path: String) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.headers.add(name: "Authorization", value: "Bearer \(Harness.operatorToken)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }
}
