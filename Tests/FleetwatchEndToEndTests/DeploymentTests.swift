import FleetwatchAgent
import FleetwatchHub
import FleetwatchProcesses
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import Synchronization
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
        // A fresh log each run: the output of an earlier run must not be read as this one's.
        try? FileManager.default.removeItem(atPath: "\(artifacts)/\(name).log")
        let process = try ChildProcess(path, args, logPath: "\(artifacts)/\(name).log", environment: environment)
        let finished = try await eventually(timeout) { !process.isRunning }
        if !finished { await process.stop(signal: SIGKILL) }
        return (process.exitCode ?? -1, process.log)
    }

    static func which(_ tool: String) -> String? {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(tool)") {
            return "\(dir)/\(tool)"
        }
        return nil
    }

    /// The compose file validates, takes every secret from a file made private by scripts/compose-secrets, puts
    /// none on a command line, and gives the hubs the least-privileged role made by db-init.
    @Test func composeFileIsValidAndKeepsSecretsInFiles() async throws {
        let compose = try #require(Self.which("docker-compose"), "docker-compose is missing (scripts/test installs it)")
        let file = "\(Self.root)/docker-compose.yml"
        let secrets = "\(Self.artifacts)/compose-secrets-\(UUID().uuidString.prefix(8))"
        let (made, out) = try await Self.run("\(Self.root)/scripts/compose-secrets", [secrets], name: "compose-secrets")
        #expect(made == 0, "\(out)")
        let mode = { (path: String) in (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1 }
        #expect(mode(secrets) == 0o700)
        for name in ["pg-admin-password", "fleetwatch-db-password", "admin-password", "demo-token", "grafana-db-password", "grafana-admin-password"] {
            // Readable by the containers' own users through their bind mounts; nobody else gets past the directory.
            #expect(mode("\(secrets)/\(name)") == 0o644, "\(name)")
            #expect((try? EnvironmentSecret.file("\(secrets)/\(name)"))?.count == 36)
        }
        let (other, otherLog) = try await Self.run("/usr/sbin/runuser", ["-u", "nobody", "--", "cat", "\(secrets)/admin-password"], name: "compose-secrets-other")
        #expect(other != 0 && otherLog.contains("Permission denied"), "another local user read a secret: \(otherLog)")
        let environment = ["FLEETWATCH_SECRETS": secrets]
        let (ok, log) = try await Self.run(compose, ["-f", file, "config", "-q"], environment: environment, name: "compose-ok")
        #expect(ok == 0, "\(log)")
        let (config, services) = try await Self.run(compose, ["-f", file, "config", "--services"], environment: environment, name: "compose-services")
        #expect(config == 0)
        #expect(Set(services.split(separator: "\n").map(String.init)).isSuperset(of: [
            "postgres", "db-init", "grafana-login", "hub-a", "hub-b", "balancer", "bots-a", "bots-b", "bot-shell", "prometheus", "alertmanager", "grafana"]))
        let (_, rendered) = try await Self.run(compose, ["-f", file, "config"], environment: environment, name: "compose-rendered")
        // Restart policies: long-running services come back, one-shot steps do not.
        let blocks = Self.serviceBlocks(rendered)
        for service in ["postgres", "hub-a", "hub-b", "balancer", "bots-a", "bots-b", "bot-shell", "prometheus", "alertmanager", "grafana"] {
            #expect(blocks[service]?.contains("restart: unless-stopped") == true, "\(service): \(blocks[service] ?? "missing")")
        }
        for service in ["db-init", "grafana-login"] {
            #expect(blocks[service]?.contains("restart: \"no\"") == true || blocks[service]?.contains("restart: 'no'") == true, "\(service)")
        }
        // The bots reach the hubs through the balancer only; the hubs trust its fixed address, and only it.
        #expect(rendered.components(separatedBy: "ws://balancer:8080/agent/v1").count - 1 == 3, "\(rendered)")
        #expect(!rendered.contains("ws://hub-"))
        for hub in ["hub-a", "hub-b"] {
            let block = blocks[hub] ?? ""
            #expect(block.contains("FLEETWATCH_TRUSTED_PROXIES: 10.118.38.10/32") && block.contains("FLEETWATCH_ALERTMANAGER_URL: http://alertmanager:9093"),
                    "\(block)")
        }
        #expect(blocks["balancer"]?.contains("ipv4_address: 10.118.38.10") == true)
        #expect(blocks["balancer"]?.contains("haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg") == true)
        // Prometheus, Alertmanager and Grafana get the repository's files, which their own tools accept.
        #expect(blocks["prometheus"]?.contains("deploy/prometheus/prometheus.yml") == true)
        #expect(blocks["alertmanager"]?.contains("deploy/alertmanager/alertmanager.yml") == true)
        #expect(blocks["grafana"]?.contains("deploy/grafana/provisioning") == true && blocks["grafana"]?.contains("deploy/grafana/dashboards") == true)
        #expect(blocks["grafana"]?.contains("GF_SECURITY_ADMIN_PASSWORD__FILE") == true)
        #expect(rendered.contains("\(secrets)/grafana-db-password"))
        // No secret value in the file or on a command line: every password or token setting names a file.
        let text = try String(contentsOfFile: file, encoding: .utf8)
        for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).hasPrefix("#") {
            let key = line.split(separator: ":").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            if key.contains("PASSWORD") || key.contains("TOKEN") { #expect(key.hasSuffix("_FILE"), "\(line)") }
            #expect(!line.contains("--token"), "\(line)")
        }
        #expect(rendered.contains("POSTGRES_USER: postgres") && rendered.contains("- database\n    - init"), "\(rendered)")
        #expect(rendered.contains("FLEETWATCH_DATABASE_URL: postgres://fleetwatch@postgres:5432/fleetwatch"))
        #expect(rendered.contains("\(secrets)/demo-token"))
        #expect(rendered.contains("condition: service_completed_successfully"))
    }

    /// The rendered compose file's service blocks, by service name.
    static func serviceBlocks(_ rendered: String) -> [String: String] {
        var blocks: [String: String] = [:], current: String?, inServices = false
        for line in rendered.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") { inServices = line == "services:"; current = nil; continue }
            guard inServices else { continue }
            if line.hasPrefix("  "), !line.hasPrefix("   "), line.hasSuffix(":") {
                current = String(line.dropFirst(2).dropLast())
                continue
            }
            if let c = current { blocks[c, default: ""] += line + "\n" }
        }
        return blocks
    }

    /// The shipped Prometheus and Alertmanager configurations pass their own tools' checks; HAProxy's accepts the
    /// balancer's, with the hubs' addresses from the environment, and refuses it without them.
    @Test func theStacksConfigurationFilesPassTheirOwnChecks() async throws {
        let promtool = try #require(Self.which("promtool"))
        let (prom, promLog) = try await Self.run(promtool, ["check", "config", "\(Self.root)/deploy/prometheus/prometheus.yml"], name: "promtool-config")
        #expect(prom == 0, "\(promLog)")
        let amtool = try #require(Self.which("amtool"), "amtool is missing (scripts/test installs prometheus-alertmanager)")
        let (am, amLog) = try await Self.run(amtool, ["check-config", "\(Self.root)/deploy/alertmanager/alertmanager.yml"], name: "amtool-config")
        #expect(am == 0, "\(amLog)")
        let haproxy = try #require(Self.which("haproxy"), "haproxy is missing (scripts/setup installs it)")
        let cfg = "\(Self.root)/deploy/haproxy/haproxy.cfg"
        let (ok, okLog) = try await Self.run(haproxy, ["-c", "-f", cfg], environment: ["FLEETWATCH_HUB_A": "127.0.0.1:1", "FLEETWATCH_HUB_B": "127.0.0.1:2"],
                                             name: "haproxy-check")
        #expect(ok == 0, "\(okLog)")
        let (bad, _) = try await Self.run(haproxy, ["-c", "-f", cfg], environment: ["FLEETWATCH_HUB_A": "", "FLEETWATCH_HUB_B": "127.0.0.1:2"], name: "haproxy-check-empty")
        #expect(bad != 0)
        let text = try String(contentsOfFile: cfg, encoding: .utf8)
        for line in ["balance leastconn", "timeout tunnel", "timeout client-fin", "option forwardfor", "/health/ready", "http-check expect status 200"] {
            #expect(text.contains(line), "haproxy.cfg lacks \(line)")
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func metricsArePrometheusFormatAndCountIngest() async throws {
        let promtool = try #require(Self.which("promtool"), "promtool is missing (scripts/test installs the prometheus package)")
        let db = try await TestDatabase.create()
        try await registerBots(["metrics-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--log-format", "json"])
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
        // The one batch was evaluated long before this scrape: nothing waits for alert evaluation.
        #expect(value("fleetwatch_alert_evaluation_backlog") == 0)
        // monitor-hub holds glibc's allocator to two arenas as it starts (a thread each, otherwise: 7).
        if ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil {
            #expect((1...2).contains(value("fleetwatch_allocator_arenas") ?? 0), "\(String(describing: value("fleetwatch_allocator_arenas")))")
        }
        #expect(text.contains("fleetwatch_batch_store_duration_seconds_bucket"))
        #expect(text.contains(#"fleetwatch_commands{state="pending"} 0"#))
        #expect(text.contains(#"fleetwatch_alerts_firing{level="CRITICAL"}"#))
        // The hub itself: its build, its process, and every route's requests by pattern and status.
        #expect(text.contains(#"fleetwatch_build_info{version=""#))
        #expect((value("process_resident_memory_bytes") ?? 0) > 1_000_000)
        // What the allocator holds (glibc 2.33 and later, as this machine's).
        if AllocatorHeap.read() != nil {
            #expect((value("fleetwatch_allocator_in_use_bytes") ?? 0) > 1_000_000)
            #expect(value("fleetwatch_allocator_free_bytes") != nil)
        }
        #expect((value("process_open_fds") ?? 0) > 3)
        #expect(text.contains(#"fleetwatch_http_requests_total{route="/api/bots",method="GET",status="401"} 1"#), "\(text)")
        #expect(text.contains(#"fleetwatch_http_request_duration_seconds_count{route="/api/bots",method="GET"} 1"#))
        // --log-format json: every line the hub wrote is one JSON object with its level, label and message.
        let lines = hub.log.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count > 3)
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] is String && object?["label"] is String && object?["message"] is String && object?["time"] is String,
                    "not a JSON log line: \(line)")
        }
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
        let (portA, portB, portLB) = (try freeTCPPort(), try freeTCPPort(), try freeTCPPort())
        let environment = ProcessInfo.processInfo.environment
        // Every file the script writes is private from birth: watch the modes while it starts.
        let modes = Mutex<[String: Set<Int>]>([:])
        let watcher = Task {
            while !Task.isCancelled {
                for name in ["operator-token", "secrets/pg-admin-password", "secrets/fleetwatch-db-password", "secrets/admin-password",
                             "secrets/demo-token", "hub-a.log", "bots-a.log", "migrate.log", "postgres-standby.pgpass", "balancer.log"] {
                    if let m = try? FileManager.default.attributesOfItem(atPath: "\(dir)/\(name)")[.posixPermissions] as? Int {
                        modes.withLock { _ = $0[name, default: []].insert(m) }
                    }
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        defer { watcher.cancel() }
        let topology = try ChildProcess("\(Self.root)/scripts/topology",
                                        ["--dir", dir, "--port-a", "\(portA)", "--port-b", "\(portB)", "--port-lb", "\(portLB)", "--bots-a", "2", "--bots-b", "1",
                                         "--standby"],
                                        logPath: "\(Self.artifacts)/topology-\(run).log", environment: environment)
        defer { Task { await topology.stop(signal: SIGTERM, timeout: .seconds(30)) } }
        #expect(try await eventually(.seconds(120)) { FileManager.default.fileExists(atPath: "\(dir)/ready") || !topology.isRunning },
                "\(topology.log)")
        let token = try String(contentsOfFile: "\(dir)/operator-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.hasPrefix("fwo_"))
        watcher.cancel()
        // Secrets as scripts/compose-secrets makes them (0644 in a 0700 directory), everything else 0600.
        for (name, seen) in modes.withLock({ $0 }) {
            // A secret is born 0600 (umask 077) and opened to 0644 once written; nothing else ever leaves 0600.
            let allowed: Set<Int> = name.hasPrefix("secrets/") ? [0o600, 0o644] : [0o600]
            #expect(seen.isSubset(of: allowed) && !seen.isEmpty, "\(name): \(seen.map { String($0, radix: 8) })")
        }
        #expect((try? FileManager.default.attributesOfItem(atPath: "\(dir)/secrets")[.posixPermissions] as? Int) == 0o700)
        #expect(modes.withLock { $0.count } == 10, "\(modes.withLock { $0.keys.sorted() })")
        // The hubs use the least-privileged role that `monitor-hub database init` made.
        let migrate = try String(contentsOfFile: "\(dir)/migrate.log", encoding: .utf8)
        #expect(migrate.contains("role fleetwatch owns database fleetwatch"), "\(migrate)")
        #expect(!(try String(contentsOfFile: "\(dir)/hub-a.log", encoding: .utf8)).contains("which has SUPERUSER"))
        // Their command lines hold no secret.
        let commandLines = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { pid -> String? in
            guard Int(pid) != nil, let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            return String(decoding: raw, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
        }.filter { $0.contains(dir) || $0.contains("fleetwatch-simbot") || $0.contains("monitor-hub serve") } ?? []
        let secretValues = try ["pg-admin-password", "fleetwatch-db-password", "admin-password", "demo-token"].map {
            try EnvironmentSecret.file("\(dir)/secrets/\($0)")
        }
        #expect(!commandLines.isEmpty)
        for line in commandLines { for value in secretValues { #expect(!line.contains(value), "a secret on a command line: \(line)") } }
        // The bots came in through the balancer, which spread them over the replicas; the hubs saw their real
        // address through it (X-Forwarded-For from the one trusted proxy).
        var bots: [[String: Any]] = []
        _ = try await eventually(.seconds(30)) {
            let (_, body) = try await api("GET", port: portLB, path: "/api/bots", token: token)
            bots = jsonObject(body) as? [[String: Any]] ?? []
            return bots.count == 3 && bots.allSatisfy { $0["connected"] as? Bool == true }
        }
        #expect(bots.count == 3 && bots.allSatisfy { $0["connected"] as? Bool == true }, "\(bots)")
        let hubLogs = ["a", "b"].map { (try? String(contentsOfFile: "\(dir)/hub-\($0).log", encoding: .utf8)) ?? "" }.joined()
        #expect(hubLogs.contains("connected from 127.0.0.1 via 127.0.0.2"), "\(hubLogs.suffix(3000))")
        // The dashboard through the balancer: sign in, the fleet, and the live feed over its /ws WebSocket.
        let password = try EnvironmentSecret.file("\(dir)/secrets/admin-password")
        let browser = try await WebDriver(logPath: "\(Self.artifacts)/topology-\(run)-chromedriver.log")
        defer { Task { await browser.quit() } }
        try await browser.open("http://127.0.0.1:\(portLB)/")
        try await browser.waitFor("the sign-in form", "return !!document.querySelector('#username');")
        try await browser.type("#username", "admin")
        try await browser.type("#password", password)
        try await browser.click("#login-button")
        try await browser.waitFor("every bot in the fleet table", "return document.querySelectorAll('#fleet-table tr[data-bot]').length === 3;")
        try await browser.waitFor("the live feed through the balancer",
                                  "const n = document.querySelector('#connection-status'); return !!n && n.classList.contains('connected');")
        // A bot stopped through the replica it is not connected to.
        let targetBot = try #require(bots.first)
        let target = try #require(targetBot["id"] as? String)
        let holder = try #require(targetBot["connectedHub"] as? String)
        let other = holder == "hub-a" ? portB : portA
        let (status, created) = try await api("POST", port: other, path: "/api/bots/\(target)/emergency-stop", body: #"{"reason": "topology test"}"#,
                                              token: token)
        #expect(status == 202, "\(created)")
        let id = (jsonObject(created) as? [String: Any])?["id"] as? String ?? ""
        let (_, record) = (0, try await {
            var last: [String: Any] = [:]
            _ = try await eventually(.seconds(30)) {
                let (_, body) = try await api("GET", port: other, path: "/api/commands/\(id)", token: token)
                last = jsonObject(body) as? [String: Any] ?? [:]
                return last["state"] as? String == "completed"
            }
            return last
        }())
        #expect(record["state"] as? String == "completed" && record["deliveredBy"] as? String == holder, "\(record)")
        // Failover as docs/operations.md tells it: the primary dies, the standby is promoted; both hubs move by
        // themselves and the API works again (the resume is written to the promoted standby).
        #expect(topology.log.contains("synchronous standby on port"), "\(topology.log)")
        for command in ["kill \(dir)/postgres", "promote \(dir)/postgres-standby"] {
            let parts = command.split(separator: " ").map(String.init)
            let p = try ChildProcess("/bin/bash", ["\(Self.root)/scripts/pg-private"] + parts, logPath: "\(Self.artifacts)/topology-\(run)-\(parts[0]).log")
            #expect(await p.stop(signal: 0, timeout: .seconds(60)) == 0)
        }
        #expect(try await eventually(.seconds(60)) {
            let a = (try? String(contentsOfFile: "\(dir)/hub-a.log", encoding: .utf8)) ?? "", b = (try? String(contentsOfFile: "\(dir)/hub-b.log", encoding: .utf8)) ?? ""
            return a.contains("moved to") && b.contains("moved to")
        })
        var resumed = 0
        _ = try await eventually(.seconds(60)) {
            resumed = (try? await api("POST", port: portLB, path: "/api/bots/\(target)/resume", body: #"{"reason": "after the failover"}"#, token: token))?.0 ?? 0
            return resumed == 202
        }
        #expect(resumed == 202)
        // Each hub's pools moved to the promoted standby (by now in use: the resume went through them, and each hub's
        // services query every few seconds) were not used before they ran (PostgresNIO warned once per pool).
        for name in ["hub-a.log", "hub-b.log"] {
            let log = (try? String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8)) ?? ""
            #expect(!log.contains("hasn't been called"), "\(name): \(log.suffix(3000))")
        }
        // It stops everything it started.
        let exit = await topology.stop(signal: SIGTERM, timeout: .seconds(90))   // a loaded machine: a promoted standby's checkpoint can take half a minute
        #expect(exit == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/postgres/postmaster.pid"))
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/postgres-standby/postmaster.pid"))
        #expect(!LoopbackPort.accepts(portA) && !LoopbackPort.accepts(portB) && !LoopbackPort.accepts(portLB))
    }
}
