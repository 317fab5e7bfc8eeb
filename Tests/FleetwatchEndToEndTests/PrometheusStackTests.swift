import FleetwatchAgent
import FleetwatchTestSupport
import Foundation
import Testing

/// fleetwatch in the operator's existing stack, against the real programs from Debian: Alertmanager receives,
/// keeps and resolves the hub's alerts; Prometheus scrapes every bot's values from the hub and answers them back.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct PrometheusStackTests {
    static var artifacts: String { DeploymentTests.artifacts }

    /// Starts `program` on a free loopback port and waits until `ready` answers 200.
    static func start(_ program: String, _ args: (Int, String) -> [String], ready: String, name: String) async throws -> (ChildProcess, Int) {
        let port = try freeTCPPort()
        let dir = "\(artifacts)/\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let process = try ChildProcess(program, args(port, dir), logPath: "\(dir).log")
        let up = try await eventually(.seconds(30)) {
            guard process.isRunning else { return false }
            return (try? await api("GET", port: port, path: ready, token: nil).0) == 200
        }
        guard up else {
            await process.stop(signal: SIGTERM)
            throw TestSupportError("\(name) did not start: \(process.log.suffix(2000))")
        }
        return (process, port)
    }

    /// Alertmanager's view of one bot's alerts (`GET /api/v2/alerts`, active ones).
    static func alertmanagerAlerts(port: Int, bot: String) async throws -> [[String: Any]] {
        let filter = "bot=\"\(bot)\"".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let (status, body) = try await api("GET", port: port, path: "/api/v2/alerts?active=true&filter=\(filter)", token: nil)
        guard status == 200 else { throw TestSupportError("Alertmanager answered \(status): \(body)") }
        return jsonObject(body) as? [[String: Any]] ?? []
    }

    @Test(.timeLimit(.minutes(3)))
    func alertmanagerShowsAnAlertWhileItFiresAndDropsItWhenItResolves() async throws {
        let binary = try #require(DeploymentTests.which("prometheus-alertmanager"), "prometheus-alertmanager is missing (scripts/test installs it)")
        let (alertmanager, amPort) = try await Self.start(binary, { port, dir in
            let config = "\(dir)/alertmanager.yml"
            try? "route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n".write(toFile: config, atomically: true, encoding: .utf8)
            return ["--config.file=\(config)", "--storage.path=\(dir)", "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address="]
        }, ready: "/-/ready", name: "alertmanager")
        defer { Task { await alertmanager.stop(signal: SIGTERM) } }

        let db = try await TestDatabase.create()
        try await registerBots(["am-bot"], token: "secret", in: db)
        let config = "\(Self.artifacts)/\(db.url.database)-alertmanager.json"
        try """
            {"hub": {"public_url": "https://fleet.example.com/"},
             "alerts": {"console_alerts": false, "no_data_seconds": 600, "alertmanager_notifications": true,
                        "alertmanager": {"url": "http://127.0.0.1:\(amPort)", "resend_interval": 1}}}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }
        let agent = try AlertEndToEndTests.agent("am-bot", hub: hub.agentURL)
        let run = Task { try await agent.run() }
        defer { run.cancel() }

        try await AlertEndToEndTests.send(agent, memory: 650)
        #expect(try await eventually(.seconds(20)) { try await !Self.alertmanagerAlerts(port: amPort, bot: "am-bot").isEmpty })
        let alerts = try await Self.alertmanagerAlerts(port: amPort, bot: "am-bot")
        #expect(alerts.count == 1, "\(alerts)")
        let alert = try #require(alerts.first)
        let labels = alert["labels"] as? [String: String] ?? [:]
        #expect(labels["bot"] == "am-bot" && labels["metric"] == "memory_usage_mb" && labels["level"] == "WARNING" && labels["hub"] == "hub-a",
                "\(labels)")
        #expect(labels["alertname"] == labels["rule"] && labels["rule"] != nil, "\(labels)")
        let annotations = alert["annotations"] as? [String: String] ?? [:]
        #expect(annotations["value"] == "650" && annotations["limit"] == "500" && annotations["summary"]?.isEmpty == false, "\(annotations)")
        #expect(annotations["dashboard"] == "https://fleet.example.com/#/bot/am-bot", "\(annotations)")
        #expect((alert["status"] as? [String: Any])?["state"] as? String == "active")

        // Alertmanager ends an alert at its endsAt (four resend intervals: 4 s here); the hub keeps it alive.
        try await Task.sleep(for: .seconds(7))
        #expect(try await Self.alertmanagerAlerts(port: amPort, bot: "am-bot").count == 1, "the firing alert expired in Alertmanager")

        try await AlertEndToEndTests.send(agent, memory: 100)
        #expect(try await eventually(.seconds(20)) { try await Self.alertmanagerAlerts(port: amPort, bot: "am-bot").isEmpty },
                "the resolved alert is still active in Alertmanager: \(hub.process?.log.suffix(1500) ?? "")")
    }

    @Test(.timeLimit(.minutes(3)))
    func prometheusScrapesEveryBotsValuesFromTheHub() async throws {
        let prometheus = try #require(DeploymentTests.which("prometheus"), "prometheus is missing (scripts/test installs it)")
        let promtool = try #require(DeploymentTests.which("promtool"))
        let db = try await TestDatabase.create()
        try await registerBots(["prom-bot", "prom-other"], token: "secret", in: db)
        let config = "\(Self.artifacts)/\(db.url.database)-metrics-auth.json"
        try #"{"hub": {"metrics_auth": "token"}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }
        let agent = try AlertEndToEndTests.agent("prom-bot", hub: hub.agentURL)
        let run = Task { try await agent.run() }
        defer { run.cancel() }
        agent.counter("trades_executed").increment(by: 7)
        agent.duration("order_latency").record(.milliseconds(250))
        agent.state("websocket_status").set("connected")
        agent.gauge("fill_latency_ms").set(42)
        try await AlertEndToEndTests.send(agent, memory: 321.5)

        // hub.metrics_auth token: both expositions want an API token.
        #expect(try await api("GET", port: hub.port, path: "/metrics/bots", token: nil).0 == 401)
        #expect(try await api("GET", port: hub.port, path: "/metrics", token: nil).0 == 401)
        #expect(try await api("GET", port: hub.port, path: "/metrics/bots", token: "fwo_wrong").0 == 401)
        var (status, text) = (0, "")
        _ = try await eventually(.seconds(20)) {
            (status, text) = try await api("GET", port: hub.port, path: "/metrics/bots")
            return text.contains("fleetwatch_bot_memory_usage_bytes")
        }
        #expect(status == 200)
        let file = "\(Self.artifacts)/\(db.url.database)-bots.txt"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let (checked, lint) = try await DeploymentTests.run("/bin/sh", ["-c", "\(promtool) check metrics < \(file)"], name: "\(db.url.database)-promtool-bots")
        #expect(checked == 0, "promtool: \(lint)\n\(text)")
        for line in [#"fleetwatch_bot_memory_usage_bytes{bot="prom-bot"} 337117184"#, #"fleetwatch_bot_fill_latency_seconds{bot="prom-bot"} 0.042"#, #"fleetwatch_bot_trades_executed_total{bot="prom-bot"} 7"#,
                     #"fleetwatch_bot_order_latency_seconds{bot="prom-bot"} 0.25"#, #"fleetwatch_bot_websocket_status_state{bot="prom-bot",state="connected"} 1"#,
                     #"fleetwatch_bot_up{bot="prom-bot"} 1"#, #"fleetwatch_bot_up{bot="prom-other"} 0"#, "# TYPE fleetwatch_bot_trades_executed_total counter"] {
            #expect(text.contains(line + "\n"), "missing \(line) in:\n\(text)")
        }

        // The real Prometheus scrapes it with the token from a file and answers the bot's value back.
        let tokenFile = "\(Self.artifacts)/\(db.url.database)-scrape-token"
        try operatorToken.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let (server, promPort) = try await Self.start(prometheus, { port, dir in
            let file = "\(dir)/prometheus.yml"
            try? """
                global: {scrape_interval: 1s, scrape_timeout: 1s}
                scrape_configs:
                  - job_name: fleetwatch-bots
                    metrics_path: /metrics/bots
                    authorization: {credentials_file: \(tokenFile)}
                    static_configs: [{targets: ['127.0.0.1:\(hub.port)']}]
                """.write(toFile: file, atomically: true, encoding: .utf8)
            return ["--config.file=\(file)", "--storage.tsdb.path=\(dir)/data", "--web.listen-address=127.0.0.1:\(port)"]
        }, ready: "/-/ready", name: "prometheus")
        defer { Task { await server.stop(signal: SIGTERM) } }
        func query(_ promql: String) async throws -> [[String: Any]] {
            let q = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let (_, body) = try await api("GET", port: promPort, path: "/api/v1/query?query=\(q)", token: nil)
            return ((jsonObject(body) as? [String: Any])?["data"] as? [String: Any])?["result"] as? [[String: Any]] ?? []
        }
        var memory: [[String: Any]] = []
        #expect(try await eventually(.seconds(30)) {
            memory = try await query(#"fleetwatch_bot_memory_usage_bytes{bot="prom-bot"} / 1048576"#)
            return !memory.isEmpty
        }, "Prometheus never scraped the bot's value: \(server.log.suffix(2000))")
        #expect((memory.first?["value"] as? [Any])?.last as? String == "321.5", "\(memory)")
        let trades = try await query(#"fleetwatch_bot_trades_executed_total{bot="prom-bot",job="fleetwatch-bots"}"#)
        #expect((trades.first?["value"] as? [Any])?.last as? String == "7", "\(trades)")
        let up = try await query(#"up{job="fleetwatch-bots"}"#)
        #expect((up.first?["value"] as? [Any])?.last as? String == "1", "the scrape with the token failed: \(up)")

        // Every query of the shipped live Grafana dashboard is valid PromQL here, and the bot panels find the bot.
        let live = try GrafanaDashboards.strings(in: "\(GrafanaDashboards.directory)/fleet-live.json", keys: ["expr", "query"])
        #expect(live.count >= 10)
        for (place, expr) in live {
            if expr.hasPrefix("label_values(") {
                let (_, body) = try await api("GET", port: promPort, path: "/api/v1/label/bot/values?match%5B%5D=fleetwatch_bot_up", token: nil)
                #expect(body.contains("prom-bot"), "\(place): \(body)")
                continue
            }
            let promql = expr.replacingOccurrences(of: "$__rate_interval", with: "1m").replacingOccurrences(of: "$bot", with: "prom-bot|prom-other")
            let q = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let (status, body) = try await api("GET", port: promPort, path: "/api/v1/query?query=\(q)", token: nil)
            #expect(status == 200 && body.contains(#""status":"success""#), "\(place): \(promql) → \(status) \(body)")
            if promql.contains("fleetwatch_bot_memory_usage_bytes") || promql.contains("fleetwatch_bot_up") {
                #expect(body.contains("prom-bot") || body.contains(#""result":[{"#), "\(place): no data for \(promql): \(body)")
            }
        }
    }
}
