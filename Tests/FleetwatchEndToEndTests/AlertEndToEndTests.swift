import Crypto
import FleetwatchAgent
import FleetwatchProcesses
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Testing

/// A real HTTP receiver for webhooks: records every request; answers 500 to the first `failFirst` ones.
actor WebhookReceiver {
    struct Received: Sendable {
        let body: Data
        let signature: String?
        let json: [String: String]
    }
    private(set) var received: [Received] = []
    private var failuresLeft: Int
    init(failFirst: Int) { failuresLeft = failFirst }

    func record(_ body: Data, signature: String?) -> Bool {
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
        received.append(Received(body: body, signature: signature, json: object.mapValues { "\($0)" }))
        if failuresLeft > 0 { failuresLeft -= 1; return false }
        return true
    }

    func events(_ kind: String) -> [Received] { received.filter { $0.json["event"] == kind } }

    /// Starts the HTTP server on a free port; returns the port and a task whose cancellation shuts the server down
    /// gracefully. (Cancelling the task that serves would race NIO's accept: a connection accepted meanwhile is
    /// never served nor finished, and the process traps with "Deinited NIOAsyncWriter without calling finish()".)
    func start() async throws -> (Int, Task<Void, any Error>) {
        let router = Router()
        router.post("/hook") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1 << 20)
            let ok = await self.record(Data(body.readableBytesView), signature: request.headers[.init("X-Fleetwatch-Signature")!])
            return ok ? .ok : .internalServerError
        }
        let port = try freeTCPPort()
        var logger = Logger(label: "webhook")
        logger.logLevel = .warning
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let serving = Task.detached { try await group.run() }   // never cancelled: it ends by the graceful shutdown
        let task = Task<Void, any Error> {
            await withTaskCancellationHandler {
                _ = await serving.result
            } onCancel: {
                Task { await group.triggerGracefulShutdown() }
            }
        }
        return (port, task)
    }
}

@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct AlertEndToEndTests {
    static let secret = "webhook-secret"

    static func config(webhookPort: Int) throws -> String {
        let path = NSTemporaryDirectory() + "fw-alerts-\(UUID().uuidString).json"
        try """
            {"alerts": {"console_alerts": false, "webhook_notifications": true, "no_data_seconds": 600,
                        "webhook": {"url": "http://127.0.0.1:\(webhookPort)/hook", "secret": "\(secret)", "min_level": "WARNING",
                                    "timeout": 30}}}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func agent(_ bot: String, hub: String) throws -> MonitorAgent {
        var c = AgentConfiguration(hubURL: hub, botID: bot, token: "secret")
        c.flushInterval = .seconds(3600)
        c.processCollector = false
        c.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(300))
        var logger = Logger(label: "agent")
        logger.logLevel = .warning
        return try MonitorAgent(configuration: c, logger: logger)
    }

    static func send(_ agent: MonitorAgent, memory: Double) async throws {
        agent.gauge("memory_usage_mb").set(memory)
        await agent.flush()
        _ = try await eventually(.seconds(20)) {
            let s = await agent.status
            return s.unackedBatches == 0 && s.bufferedSamples == 0
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func memoryAlertFiresOnceIsSignedRetriedAndResolves() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["alert-1"], token: "secret", in: db)
        let receiver = WebhookReceiver(failFirst: 1)
        let (webhookPort, server) = try await receiver.start()
        defer { server.cancel() }
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", try Self.config(webhookPort: webhookPort)])
        let agent = try Self.agent("alert-1", hub: hub.agentURL)
        let task = Task { try await agent.run() }
        defer { task.cancel() }

        try await Self.send(agent, memory: 200)
        try await Self.send(agent, memory: 650)                 // above 500: WARNING fires
        try await Self.send(agent, memory: 700)                 // still above: no repeat within the cooldown
        #expect(try await eventually { await receiver.events("fired").count == 2 })   // 500, then 200 on retry
        try await Self.send(agent, memory: 300)                 // back below 490 (hysteresis): resolved
        #expect(try await eventually { await receiver.events("resolved").count == 1 })
        try await Task.sleep(for: .milliseconds(500))
        #expect(await receiver.events("fired").count == 2)

        let fired = try #require(await receiver.events("fired").last)
        #expect(fired.json["bot"] == "alert-1")
        #expect(fired.json["rule"] == "memory_usage_mb")
        #expect(fired.json["level"] == "WARNING")
        #expect(fired.json["value"] == "650")
        #expect(fired.json["text"]?.hasPrefix("[WARNING] alert-1 memory_usage_mb") == true)
        // t=<timestamp>,v1=HMAC(secret, "<timestamp>." + body), the timestamp within a few seconds of now.
        let fields = Dictionary(uniqueKeysWithValues: (fired.signature ?? "").split(separator: ",").compactMap { part -> (String, String)? in
            let kv = part.split(separator: "=", maxSplits: 1)
            return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
        })
        let timestamp = try #require(fields["t"].flatMap { Int64($0) })
        #expect(abs(Double(timestamp) - Date().timeIntervalSince1970) < 60)
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(timestamp).".utf8) + fired.body, using: SymmetricKey(data: Data(Self.secret.utf8)))
        #expect(fields["v1"] == mac.map { String(format: "%02x", $0) }.joined())

        // The ledger is written a moment after each attempt (in groups).
        var ledger: [String] = []
        _ = try await eventually(.seconds(10)) {
            ledger = try await db.withClient { client in
                try await client.query("""
                    SELECT event, attempt, outcome FROM notifications WHERE channel = 'webhook' ORDER BY id
                    """, logger: Logger(label: "t")).decode((String, Int, String).self).all().map { "\($0.0)/\($0.1)/\($0.2)" }
            }
            return ledger.count >= 3
        }
        #expect(ledger == ["fired/1/retrying", "fired/2/delivered", "resolved/1/delivered"])
        let states = try await db.withClient { client in
            try await client.query("SELECT state, notify_count FROM alerts", logger: Logger(label: "t"))
                .decode((String, Int).self).all().map { "\($0.0)/\($0.1)" }
        }
        #expect(states == ["resolved/1"])
        await hub.kill(SIGTERM)
    }

    /// The same bot's data reaches two replicas (it reconnects from A to B while breaching):
    /// exactly one notification per alert per channel.
    @Test(.timeLimit(.minutes(3)))
    func twoReplicasNotifyOnce() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["alert-2"], token: "secret", in: db)
        let receiver = WebhookReceiver(failFirst: 0)
        let (webhookPort, server) = try await receiver.start()
        defer { server.cancel() }
        let config = try Self.config(webhookPort: webhookPort)
        let hubA = try HubUnderTest(database: db, name: "hub-a"), hubB = try HubUnderTest(database: db, name: "hub-b")
        try await hubA.start(extra: ["--config", config])
        try await hubB.start(extra: ["--config", config])

        let first = try Self.agent("alert-2", hub: hubA.agentURL)
        let t1 = Task { try await first.run() }
        try await Self.send(first, memory: 800)
        #expect(try await eventually { await receiver.events("fired").count == 1 })
        t1.cancel()
        let second = try Self.agent("alert-2", hub: hubB.agentURL)
        let t2 = Task { try await second.run() }
        defer { t2.cancel() }
        try await Self.send(second, memory: 820)
        try await Self.send(second, memory: 830)
        try await Self.send(second, memory: 100)
        #expect(try await eventually { await receiver.events("resolved").count == 1 })
        try await Task.sleep(for: .seconds(1))
        #expect(await receiver.events("fired").count == 1)
        #expect(await receiver.events("resolved").count == 1)
        #expect(await receiver.events("repeated").isEmpty)
        await hubA.kill(SIGTERM)
        await hubB.kill(SIGTERM)
    }
}

/// Email through a real SMTP server (aiosmtpd, installed by scripts/test).
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct EmailAlertTests {
    /// A self-signed certificate for localhost and 127.0.0.1 (SMTP STARTTLS/TLS, the hub's HTTPS/wss).
    static func certificate() async throws -> (cert: String, key: String) {
        let dir = NSTemporaryDirectory() + "fw-smtp-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let openssl = try ChildProcess("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(dir)/key.pem",
                                                            "-out", "\(dir)/cert.pem", "-days", "1", "-subj", "/CN=localhost",
                                                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                                       logPath: "\(dir)/openssl.log")
        while openssl.isRunning { try await Task.sleep(for: .milliseconds(20)) }   // never block a shared thread
        return ("\(dir)/cert.pem", "\(dir)/key.pem")
    }

    @Test(.timeLimit(.minutes(3)), arguments: ["plain", "starttls", "tls"])
    func criticalAlertArrivesByEmail(security: String) async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["mail-bot"], token: "secret", in: db)
        let smtpPort = try freeTCPPort()
        let dir = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        var args = ["python3", "-u", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(smtpPort)", "-c", "aiosmtpd.handlers.Debugging", "stdout"]
        if security != "plain" {
            let (cert, key) = try await Self.certificate()
            args += security == "tls" ? ["--smtpscert", cert, "--smtpskey", key] : ["--tlscert", cert, "--tlskey", key]
        }
        let smtp = try ChildProcess("/usr/bin/env", args, logPath: "\(dir)/smtp-\(security)-\(smtpPort).log")
        defer { kill(smtp.pid, SIGKILL) }
        #expect(try await eventually(.seconds(20)) { LoopbackPort.accepts(smtpPort) })
        let path = NSTemporaryDirectory() + "fw-mail-\(UUID().uuidString).json"
        try """
            {"alerts": {"console_alerts": false, "email_notifications": true,
                        "email": {"host": "127.0.0.1", "port": \(smtpPort), "security": "\(security)", "from": "hub@fleet.test",
                                  "verify_certificate": false,
                                  "to": ["ops@fleet.test"], "min_level": "CRITICAL"}}}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", path])
        let agent = try AlertEndToEndTests.agent("mail-bot", hub: hub.agentURL)
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        agent.gauge("daily_pnl").set(-75.5)   // beyond the -50 daily loss limit: CRITICAL
        await agent.flush()
        #expect(try await eventually(.seconds(30)) { smtp.log.contains("Subject: [CRITICAL] mail-bot daily_pnl") })
        #expect(smtp.log.contains("ops@fleet.test"))
        #expect(smtp.log.contains("Value:     -75.5"))
        // The ledger row is written once the SMTP session has ended, just after the server printed the mail.
        var ledger: [String] = []
        _ = try await eventually(.seconds(10)) {
            ledger = try await db.withClient { client in
                try await client.query("SELECT outcome FROM notifications WHERE channel = 'email'", logger: Logger(label: "t"))
                    .decode(String.self).all()
            }
            return !ledger.isEmpty
        }
        #expect(ledger == ["delivered"])
        await hub.kill(SIGTERM)
    }
}

/// The simulated bot program with a memory leak, against a real hub: the memory alert reaches the webhook.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct SimulatedBotAlertTests {
    @Test(.timeLimit(.minutes(3)))
    func leakingSimulatedBotRaisesTheMemoryAlert() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["leaky"], token: "secret", in: db)
        let receiver = WebhookReceiver(failFirst: 0)
        let (webhookPort, server) = try await receiver.start()
        defer { server.cancel() }
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", try AlertEndToEndTests.config(webhookPort: webhookPort)])
        let dir = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        let bot = try ChildProcess(builtExecutable("fleetwatch-simbot"),
                                   ["--hub", hub.agentURL, "--bot-id", "leaky", "--token", "secret", "--trade-rate", "20",
                                    "--flush-interval", "0.2", "--start-memory", "480", "--memory-leak", "20"],
                                   logPath: "\(dir)/\(db.url.database)-simbot.log")
        defer { kill(bot.pid, SIGKILL) }
        #expect(try await eventually(.seconds(60)) {
            await receiver.events("fired").contains { $0.json["rule"] == "memory_usage_mb" && $0.json["bot"] == "leaky" }
        })
        await bot.stop(signal: SIGKILL)
        await hub.kill(SIGTERM)
    }
}
