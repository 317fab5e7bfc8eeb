import FleetwatchAgent
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import Testing

/// The deployment pieces against the real tools: docker-compose's validator, promtool, the native
/// two-replica topology script, readiness following PostgreSQL, graceful shutdown.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct DeploymentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let artifacts = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()

    /// Runs a program to its end (at most `timeout`): exit code and output.
    static func run(_ path: String, _ args: [String], environment: [String: String] = [:], timeout: Duration = .seconds(60),
                    name: String) async throws -> (Int32, String) {
        let process = try ChildProcess(path, args, logPath: "\(artifacts)/\(name).log", environment: environment)
        let finished = try await eventually(timeout) { !process.isRunning }
        if !finished { await process.stop(signal: SIGKILL) }
        return (process.exitCode ?? -1, process.log)
    }

    static func which(_ tool: String) -> String? {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(tool)") {
            return "\(dir)/\(tool)"
        }
        return nil
    }

    @Test func composeFileIsValidAndNeedsItsSecrets() async throws {
        let compose = try #require(Self.which("docker-compose"), "docker-compose is missing (scripts/test installs it)")
        let file = "\(Self.root)/docker-compose.yml"
        let (ok, log) = try await Self.run(compose, ["-f", file, "config", "-q"],
                                           environment: ["POSTGRES_PASSWORD": "pw", "FLEETWATCH_DEMO_TOKEN": "t"], name: "compose-ok")
        #expect(ok == 0, "\(log)")
        let (config, rendered) = try await Self.run(compose, ["-f", file, "config", "--services"],
                                                    environment: ["POSTGRES_PASSWORD": "pw", "FLEETWATCH_DEMO_TOKEN": "t"], name: "compose-services")
        #expect(config == 0)
        #expect(Set(rendered.split(separator: "\n").map(String.init)).isSuperset(of: ["postgres", "hub-a", "hub-b", "bots-a", "bots-b"]))
        // No secret in the file: without the variables it refuses to render.
        let (missing, why) = try await Self.run(compose, ["-f", file, "config", "-q"], environment: ["POSTGRES_PASSWORD": ""],
                                                name: "compose-missing")
        #expect(missing != 0 && why.contains("POSTGRES_PASSWORD"), "\(why)")
    }

    @Test(.timeLimit(.minutes(3)))
    func metricsArePrometheusFormatAndCountIngest() async throws {
        let promtool = try #require(Self.which("promtool"), "promtool is missing (scripts/test installs the prometheus package)")
        let db = try await TestDatabase.create()
        try await registerBots(["metrics-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        let agent = try AlertEndToEndTests.agent("metrics-bot", hub: hub.agentURL)
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        try await AlertEndToEndTests.send(agent, memory: 100)
        _ = try await api("GET", port: hub.port, path: "/api/bots", token: "fwo_wrong")   // a refused request, not an ingest error
        let (status, text) = try await api("GET", port: hub.port, path: "/metrics", token: nil)
        #expect(status == 200)
        let file = "\(Self.artifacts)/\(db.url.database)-metrics.txt"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let (checked, lint) = try await Self.run("/bin/sh", ["-c", "\(promtool) check metrics < \(file)"], name: "\(db.url.database)-promtool")
        #expect(checked == 0, "promtool: \(lint)")
        func value(_ line: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(line + " ") }.flatMap { Double($0.split(separator: " ").last!) }
        }
        #expect(value("fleetwatch_agents_connected") == 1)
        #expect((value("fleetwatch_batches_stored_total") ?? 0) >= 1)
        #expect((value("fleetwatch_samples_stored_total") ?? 0) >= 1)
        #expect(value("fleetwatch_postgres_up") == 1)
        #expect(text.contains("fleetwatch_batch_store_duration_seconds_bucket"))
        #expect(text.contains(#"fleetwatch_commands{state="pending"} 0"#))
        #expect(text.contains(#"fleetwatch_alerts_firing{level="CRITICAL"}"#))
    }

    @Test(.timeLimit(.minutes(3)))
    func readinessFollowsPostgreSQL() async throws {
        let run = UUID().uuidString.prefix(8)
        let dir = NSTemporaryDirectory() + "fw-ready-\(run)"
        let pg = "\(Self.root)/scripts/pg-private"
        let (started, url) = try await Self.run(pg, ["start", dir], name: "pg-ready-start-\(run)")
        #expect(started == 0, "\(url)")
        defer { Task { _ = try? await Self.run(pg, ["stop", dir], name: "pg-ready-stop-\(run)") } }
        let db = try await TestDatabase.create(on: DatabaseURL(url.trimmingCharacters(in: .whitespacesAndNewlines)),
                                               prefix: "fw_ready_", logger: Logger(label: "test"))
        let hub = try HubUnderTest(database: db, name: "ready-hub")
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        #expect(try await HubUnderTest.httpGet(port: hub.port, path: "/health/ready") == 200)
        _ = try await Self.run(pg, ["stop", dir], name: "pg-ready-stop-\(run)")
        #expect(try await eventually(.seconds(20)) { try await HubUnderTest.httpGet(port: hub.port, path: "/health/ready") == 503 })
        #expect(try await HubUnderTest.httpGet(port: hub.port, path: "/health/live") == 200)
        _ = try await Self.run(pg, ["start", dir], name: "pg-ready-restart-\(run)")
        #expect(try await eventually(.seconds(30)) { try await HubUnderTest.httpGet(port: hub.port, path: "/health/ready") == 200 })
    }

    @Test(.timeLimit(.minutes(3)))
    func gracefulShutdownAcknowledgesThenClosesWithGoingAway() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["drain-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        let ledger = SealedLedger()
        var c = AgentConfiguration(hubURL: hub.agentURL, botID: "drain-bot", token: "secret")
        c.flushInterval = .milliseconds(20)
        c.processCollector = false
        c.backoff = Backoff(initial: .seconds(30), maximum: .seconds(30))   // stay away after the close
        let agent = try MonitorAgent(configuration: c, logger: Logger(label: "agent"), onSeal: ledger.observer(bot: "drain-bot"))
        agent.gauge("memory_usage_mb").set(1)
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        #expect(try await eventually { await agent.status.ackedBatches > 20 })
        let status = await hub.kill(SIGTERM)
        #expect(status == 0, "hub exit status \(status)")
        let closed = try await eventually { await agent.status.lastCloseCode == 1001 }
        let agentStatus = await agent.status
        #expect(closed, "\(agentStatus)")
        #expect(hub.log.contains("closing 1 agent connection(s) after their current batch"))
        // Everything the hub acknowledged is stored, once.
        let acked = await agent.status.ackedBatches
        let stored = try await storedBatches(db)
        #expect(Int64(stored.count) >= acked && stored.values.allSatisfy { $0 == 1 })
    }

    @Test(.timeLimit(.minutes(4)))
    func theNativeTopologyStopsABotThroughTheOtherReplica() async throws {
        let run = UUID().uuidString.prefix(8)
        let dir = NSTemporaryDirectory() + "fw-topology-\(run)"
        let (portA, portB) = (try freeTCPPort(), try freeTCPPort())
        var environment = ProcessInfo.processInfo.environment
        environment["POSTGRES_PASSWORD"] = "topology-secret"
        environment["FLEETWATCH_DEMO_TOKEN"] = "topology-token"
        let topology = try ChildProcess("\(Self.root)/scripts/topology",
                                        ["--dir", dir, "--port-a", "\(portA)", "--port-b", "\(portB)", "--bots-a", "2", "--bots-b", "1"],
                                        logPath: "\(Self.artifacts)/topology-\(run).log", environment: environment)
        defer { Task { await topology.stop(signal: SIGTERM, timeout: .seconds(30)) } }
        #expect(try await eventually(.seconds(120)) { FileManager.default.fileExists(atPath: "\(dir)/ready") || !topology.isRunning },
                "\(topology.log)")
        let token = try String(contentsOfFile: "\(dir)/operator-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.hasPrefix("fwo_"))
        // A bot connected to hub-a, stopped through hub-b.
        var bot: String?
        _ = try await eventually(.seconds(30)) {
            let (_, body) = try await api("GET", port: portB, path: "/api/bots", token: token)
            let bots = jsonObject(body) as? [[String: Any]] ?? []
            bot = bots.first { $0["connectedHub"] as? String == "hub-a" }?["id"] as? String
            return bots.count == 3 && bot != nil
        }
        let target = try #require(bot, "no bot connected to hub-a: \(topology.log)")
        let (status, created) = try await api("POST", port: portB, path: "/api/bots/\(target)/emergency-stop", body: #"{"reason": "topology test"}"#,
                                              token: token)
        #expect(status == 202, "\(created)")
        let id = (jsonObject(created) as? [String: Any])?["id"] as? String ?? ""
        let (_, record) = (0, try await {
            var last: [String: Any] = [:]
            _ = try await eventually(.seconds(30)) {
                let (_, body) = try await api("GET", port: portB, path: "/api/commands/\(id)", token: token)
                last = jsonObject(body) as? [String: Any] ?? [:]
                return last["state"] as? String == "completed"
            }
            return last
        }())
        #expect(record["state"] as? String == "completed" && record["deliveredBy"] as? String == "hub-a", "\(record)")
        // It stops everything it started.
        let exit = await topology.stop(signal: SIGTERM, timeout: .seconds(30))
        #expect(exit == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/postgres/postmaster.pid"))
        #expect(!LoopbackPort.accepts(portA) && !LoopbackPort.accepts(portB))
    }
}
