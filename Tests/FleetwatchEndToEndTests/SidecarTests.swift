import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import Testing

/// `monitor-agent` around a real child process (a small Python bot), against a real hub and PostgreSQL.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct SidecarTests {
    static let bot = """
        import json, os, signal, socket, sys, time, urllib.request
        marker, log_path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        # The sidecar gives the bot its address and local token, and not the hub token.
        env = open(marker + ".env", "w")
        env.write("hub token visible: %s\\n" % ("FLEETWATCH_TOKEN" in os.environ or "FLEETWATCH_TOKEN_FILE" in os.environ))
        req = urllib.request.Request(os.environ["FLEETWATCH_SIDECAR_URL"] + "/metrics", method="POST",
                                     data=json.dumps({"gauges": {"open_orders": 7}}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + os.environ["FLEETWATCH_SIDECAR_TOKEN"]})
        env.write("posted: %d\\n" % urllib.request.urlopen(req).status)
        env.close()
        def stop(signum, frame):
            open(marker, "a").write("stopped by signal %d\\n" % signum)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        log = open(log_path, "a")
        while True:
            s.sendto(b"trades_executed:1|c\\ndaily_pnl:-3.5|g\\nexchange_status:open|s\\nbad line", ("127.0.0.1", port))
            log.write("tick " * 50 + "\\n"); log.flush()
            time.sleep(0.1)
        """

    static func latest(_ db: TestDatabase, _ metric: String) async throws -> Double? {
        try await EmergencyStopTests.scalar(db, Double.self, """
            SELECT value FROM sample_points WHERE bot = 'side-bot' AND metric = \(metric) ORDER BY ts DESC LIMIT 1
            """)
    }

    @Test(.timeLimit(.minutes(3)))
    func stopsAndRestartsARealChildAndForwardsItsMetrics() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["side-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        let restAPI = WebhookReceiver(failFirst: 0)   // stands in for the bot's own REST stop endpoint
        let (restPort, restServer) = try await restAPI.start()
        defer { restServer.cancel() }

        let dir = NSTemporaryDirectory() + "fw-sidecar-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Self.bot.write(toFile: "\(dir)/bot.py", atomically: true, encoding: .utf8)
        let statsd = try freeTCPPort(), http = try freeTCPPort()
        let artifacts = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        try SecretFile.write("secret\n", to: "\(dir)/hub-token")
        let sidecar = try ChildProcess(builtExecutable("monitor-agent"), [
            "run", "--bot-id", "side-bot", "--hub", hub.agentURL, "--token-file", "\(dir)/hub-token", "--log-file", "\(dir)/bot.log",
            "--statsd-port", "\(statsd)", "--http-port", "\(http)", "--flush-interval", "0.2", "--local-token-file", "\(dir)/local-token",
            "--on-stop-http", "http://127.0.0.1:\(restPort)/hook",
            "--", "python3", "\(dir)/bot.py", "\(dir)/stopped", "\(dir)/bot.log", "\(statsd)",
        ], logPath: "\(artifacts)/\(db.url.database)-sidecar.log")
        defer { Task { await sidecar.stop(signal: SIGTERM) } }

        // The bot's StatsD metrics and its health as seen from outside arrive at the hub.
        #expect(try await eventually { try await Self.latest(db, "daily_pnl") == -3.5 }, "\(sidecar.log)")
        #expect(try await eventually { try await Self.latest(db, "bot_alive") == 1 })
        #expect(try await eventually { (try await Self.latest(db, "memory_usage_mb") ?? 0) > 1 })
        #expect(try await eventually { (try await Self.latest(db, "log_file_size_mb") ?? 0) > 0 })
        #expect(try await eventually { (try await Self.latest(db, "statsd_malformed_lines") ?? 0) > 0 })
        // The bot program posted with the token it was given, and did not see the hub token.
        #expect(try await eventually { try await Self.latest(db, "open_orders") == 7 })
        #expect(try String(contentsOfFile: "\(dir)/stopped.env", encoding: .utf8) == "hub token visible: False\nposted: 204\n")
        let local = try EnvironmentSecret.file("\(dir)/local-token")
        #expect(try FileManager.default.attributesOfItem(atPath: "\(dir)/local-token")[.posixPermissions] as? Int == 0o600)
        let (posted, _) = try await api("POST", port: http, path: "/metrics", body: #"{"gauges": {"total_pnl": 42.5}}"#, token: local)
        #expect(posted == 204)
        #expect(try await eventually { try await Self.latest(db, "total_pnl") == 42.5 })

        // Anyone else on the machine, or a web page: no token, a wrong Host (DNS rebinding), an Origin, or a body a
        // browser may send cross-site — refused, and nothing is declared.
        func ask(_ request: String) async throws -> Int? {
            OperatorSecurityTests.status(try await OperatorSecurityTests.request(port: http, source: "127.0.0.1", request))
        }
        let declare = #"{"reason": "not you", "liquidate": true}"#
        func post(_ path: String, _ headers: String, _ body: String = declare) -> String {
            "POST \(path) HTTP/1.1\r\n\(headers)Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        }
        #expect(try await ask(post("/emergency", "Host: 127.0.0.1\r\nContent-Type: application/json\r\n")) == 401)
        #expect(try await ask(post("/emergency", "Host: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: Bearer secret\r\n")) == 401)
        #expect(try await ask(post("/emergency", "Host: evil.example:\(http)\r\nContent-Type: application/json\r\nAuthorization: Bearer \(local)\r\n")) == 421)
        #expect(try await ask(post("/emergency", "Host: 127.0.0.1\r\nOrigin: http://evil.example\r\nContent-Type: application/json\r\nAuthorization: Bearer \(local)\r\n")) == 403)
        #expect(try await ask(post("/metrics", "Host: localhost\r\nContent-Type: text/plain\r\nAuthorization: Bearer \(local)\r\n", "total_pnl:1|g")) == 415)
        #expect(try await ask(post("/metrics", "Host: localhost\r\nContent-Type: application/x-statsd\r\nAuthorization: Bearer \(local)\r\n", "total_pnl:43|g")) == 204)
        #expect(try await ask("GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n") == 401)
        #expect(try await eventually { try await Self.latest(db, "total_pnl") == 43 })
        #expect(try await EmergencyStopTests.scalar(db, Int.self, "SELECT count(*)::int FROM commands") == 0)

        // The trading helper over HTTP and StatsD: the reference metrics under their names.
        #expect(try await api("POST", port: http, path: "/trade", body: #"{"success": true, "pnl": 2.5, "duration_ms": 80}"#, token: local).0 == 204)
        #expect(try await api("POST", port: http, path: "/trade", body: #"{"success": false, "pnl": -1}"#, token: local).0 == 204)
        #expect(try await api("POST", port: http, path: "/trade", body: #"{"pnl": "lots"}"#, token: local).0 == 400)
        #expect(try await api("POST", port: http, path: "/api-call", body: #"{"error": true}"#, token: local).0 == 204)
        let udp = try ChildProcess("/usr/bin/env", ["python3", "-c", """
            import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"fleetwatch.trade:1|c|#success:true,duration_ms:40\\nfleetwatch.api_call:1|c|#error:false", ("127.0.0.1", \(statsd)))
            """], logPath: "\(dir)/udp.log")
        #expect(await udp.stop(signal: 0, timeout: .seconds(20)) == 0)
        #expect(try await eventually { try await Self.latest(db, "api_calls") == 2 }, "\(sidecar.log)")
        #expect(try await Self.latest(db, "api_errors") == 1)
        #expect(try await eventually { (try await Self.latest(db, "success_rate")).map { abs($0 - 200.0 / 3) < 1e-6 } == true })
        #expect(try await Self.latest(db, "total_pnl") == 2.5)

        // Emergency stop: the bot's REST endpoint is called, the child gets SIGTERM and stays down.
        let (status, created) = try await api("POST", port: hub.port, path: "/api/bots/side-bot/emergency-stop",
                                              body: #"{"reason": "sidecar test"}"#)
        #expect(status == 202)
        let id = (jsonObject(created) as? [String: Any])?["id"] as? String ?? ""
        let record = try await EmergencyStopTests.waitForState(hub.port, id, "completed")
        #expect(EmergencyStopTests.steps(record).contains("stop_trading/succeeded"))
        #expect(try String(contentsOfFile: "\(dir)/stopped", encoding: .utf8) == "stopped by signal 15\n")
        #expect(await restAPI.received.count == 1)
        #expect(try await eventually { try await Self.latest(db, "bot_alive") == 0 })
        try await Task.sleep(for: .seconds(1.5))
        #expect(try await Self.latest(db, "bot_alive") == 0, "the stopped bot was restarted")
        #expect(sidecar.isRunning)

        // Resume: the sidecar starts the bot program again.
        let (resumed, body) = try await api("POST", port: hub.port, path: "/api/bots/side-bot/resume", body: #"{"reason": "ok"}"#)
        #expect(resumed == 202)
        _ = try await EmergencyStopTests.waitForState(hub.port, (jsonObject(body) as? [String: Any])?["id"] as? String ?? "", "completed")
        #expect(try await eventually { try await Self.latest(db, "bot_alive") == 1 })
        #expect(try await eventually { try await Self.latest(db, "bot_restarts") == 1 })
        // Once the restarted program is in its loop (its SIGTERM handler installed, its log growing) …
        let size = { (try? FileManager.default.attributesOfItem(atPath: "\(dir)/bot.log")[.size] as? Int) ?? 0 }
        let before = size()
        #expect(try await eventually { size() > before })
        // SIGTERM to the sidecar reaches the bot program; the sidecar exits with its status.
        #expect(await sidecar.stop(signal: SIGTERM) == 0)
        #expect(try String(contentsOfFile: "\(dir)/stopped", encoding: .utf8) == "stopped by signal 15\nstopped by signal 15\n")
    }

    @Test(.timeLimit(.minutes(2)))
    func aWrongTokenOrAddressEndsWithAClearMessage() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["side-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        let artifacts = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        for (name, url, token, expected) in [
            ("token", hub.agentURL, "wrong", "refused bot side-bot"),
            ("address", "ws://127.0.0.1:\(try freeTCPPort())/agent/v1", "secret", "cannot reach the hub"),
        ] {
            let sidecar = try ChildProcess(builtExecutable("monitor-agent"), [
                "run", "--bot-id", "side-bot", "--hub", url, "--token", token, "--connect-timeout", "3", "--no-statsd", "--no-http",
                "--", "sleep", "60",
            ], logPath: "\(artifacts)/\(db.url.database)-sidecar-\(name).log")
            #expect(try await eventually(.seconds(20)) { !sidecar.isRunning })
            #expect(sidecar.exitCode == 2)
            #expect(sidecar.log.contains(expected), "\(sidecar.log)")
        }
    }
}
