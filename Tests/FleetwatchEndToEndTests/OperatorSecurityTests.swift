import FleetwatchProcesses
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// The paths operators deploy on (issue 15), against real hub processes: a balancer in front, a
/// least-privileged database role, secrets on disk, the sidecar's local port, notifications, outages.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct OperatorSecurityTests {
    static let adminPassword = "proxy-test-password"

    /// One HTTP/1.1 request from `source`; the whole response (head and body).
    static func request(port: Int, source: String, _ text: String) async throws -> String {
        let socket = try RawSocket(port: port, source: source)
        defer { socket.disconnect() }
        let deadline = ContinuousClock.now + .seconds(10)
        guard await socket.write(Array(text.utf8), until: deadline) else { return "" }
        var received: [UInt8] = []
        while case .data(let bytes) = await socket.read(until: deadline) { received += bytes }
        return String(decoding: received, as: UTF8.self)
    }

    static func signIn(port: Int, source: String, password: String, headers: String = "") async throws -> String {
        let body = #"{"username": "admin", "password": "\#(password)"}"#
        return try await request(port: port, source: source, "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + headers + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body)
    }

    static func status(_ response: String) -> Int? {
        response.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
    }

    static func head(_ response: String) -> String {
        response.components(separatedBy: "\r\n\r\n").first?.lowercased() ?? ""
    }

    /// X-Forwarded-For and -Proto count only from a trusted proxy (127.0.0.1 here); from anyone else (127.0.0.2)
    /// they are ignored. Behind the proxy, each client has its own sign-in lock-out and audit address, and an
    /// HTTPS client gets a Secure cookie and HSTS.
    @Test(.timeLimit(.minutes(3)))
    func forwardedHeadersOnlyFromTrustedProxies() async throws {
        let db = try await TestDatabase.create()
        try await registerBots([], token: "secret", in: db)
        let config = NSTemporaryDirectory() + "/\(db.url.database)-proxy.json"
        try #"{"hub": {"trusted_proxies": ["127.0.0.1/32"]}, "dashboard": {"admin_password": "\#(Self.adminPassword)"}}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }

        // An untrusted peer claiming to be someone else and to use HTTPS: neither is believed.
        let spoofed = try await Self.signIn(port: hub.port, source: "127.0.0.2", password: Self.adminPassword,
                                            headers: "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n")
        #expect(Self.status(spoofed) == 200)
        #expect(!Self.head(spoofed).contains("secure") && !Self.head(spoofed).contains("strict-transport-security"), "\(Self.head(spoofed))")

        // Ten wrong passwords from one client behind the proxy lock out that client only.
        for _ in 0..<10 {
            let r = try await Self.signIn(port: hub.port, source: "127.0.0.1", password: "wrong-password", headers: "X-Forwarded-For: 203.0.113.5\r\n")
            #expect(Self.status(r) == 401)
        }
        let locked = try await Self.signIn(port: hub.port, source: "127.0.0.1", password: Self.adminPassword, headers: "X-Forwarded-For: 203.0.113.5\r\n")
        #expect(Self.status(locked) == 429)
        // Another client through the same proxy, over HTTPS at the balancer: signed in, Secure cookie, HSTS.
        let other = try await Self.signIn(port: hub.port, source: "127.0.0.1", password: Self.adminPassword,
                                          headers: "X-Forwarded-For: 203.0.113.6\r\nX-Forwarded-Proto: https\r\n")
        #expect(Self.status(other) == 200)
        let head = Self.head(other)
        #expect(head.contains("set-cookie: fw_session=") && head.contains("; secure") && head.contains("strict-transport-security: max-age=31536000"), "\(head)")

        // The audit log names the clients (and the proxy they came through), and the spoofer by its own address.
        let remotes = try await db.withClient { client in
            try await client.query("SELECT remote, outcome FROM audit_log WHERE action = 'POST /auth/login' ORDER BY id", logger: Logger(label: "t"))
                .decode((String?, String).self).all()
        }
        #expect(remotes.contains { $0.0?.hasPrefix("127.0.0.2:") == true && $0.1 == "accepted" }, "\(remotes)")
        #expect(remotes.contains { $0.0?.hasPrefix("203.0.113.5 via 127.0.0.1:") == true && $0.1 == "refused" }, "\(remotes)")
        #expect(remotes.contains { $0.0?.hasPrefix("203.0.113.6 via 127.0.0.1:") == true && $0.1 == "accepted" }, "\(remotes)")
        #expect(!remotes.contains { $0.0?.contains("198.51.100.1") == true })
    }

    static let artifacts = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()

    /// The SQLSTATE a statement fails with, or nil if it succeeds.
    static func sqlState(_ db: TestDatabase, _ sql: String) async -> String? {
        do {
            try await db.withClient { client in _ = try await client.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "t")).all() }
            return nil
        } catch let error as PSQLError {
            return error.serverInfo?[.sqlState] ?? "\(error.code)"
        } catch {
            return "\(error)"
        }
    }

    /// The embedded cluster: the hub's role owns its database and nothing else (no roles, no pg_authid, no
    /// programs on the server); every secret file is 0600 from the moment it exists; a superuser (the cluster's
    /// own) makes analysts' logins.
    @Test(.timeLimit(.minutes(3)))
    func embeddedHubRoleIsLeastPrivilegedAndSecretsArePrivate() async throws {
        let run = UUID().uuidString.prefix(8)
        let dir = "\(Self.artifacts)/fw-embedded-\(run)"
        let port = try freeTCPPort()
        let secrets = ["pg-password", "pg-admin-password", "initial-admin-password"]
        // Watch the files' modes while the hub starts for the first time.
        let seen = Mutex<[String: Set<Int>]>([:])
        let watcher = Task {
            while !Task.isCancelled {
                for name in secrets {
                    if let mode = try? FileManager.default.attributesOfItem(atPath: "\(dir)/\(name)")[.posixPermissions] as? Int {
                        seen.withLock { _ = $0[name, default: []].insert(mode) }
                    }
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        let hub = try ChildProcess(builtExecutable("monitor-hub"), ["serve", "--data-dir", dir, "--port", "\(port)", "--log-level", "info"],
                                   logPath: "\(Self.artifacts)/fw-embedded-hub-\(run).log")
        defer { Task { await hub.stop(signal: SIGTERM, timeout: .seconds(30)) } }
        #expect(try await eventually(.seconds(90)) { try await HubUnderTest.httpGet(port: port, path: "/health/ready") == 200 }, "\(hub.log)")
        try await Task.sleep(for: .milliseconds(100))
        watcher.cancel()
        let modes = seen.withLock { $0 }
        for name in secrets { #expect(modes[name] == [0o600], "\(name): modes seen \(modes[name].map { $0.map { String($0, radix: 8) } } ?? [])") }
        #expect(!hub.log.contains("which has SUPERUSER"), "\(hub.log)")
        // A first start creates the cluster, the database and its role through pools of their own: none is used
        // before it runs (PostgresNIO's "run() hasn't been called yet" warning, once on every first start).
        let pool = hub.log.split(separator: "\n").filter { $0.contains("[PostgresNIO]") && !$0.contains(" info ") && !$0.contains(" debug ") }
        #expect(pool.isEmpty, "PostgresNIO logged: \(pool.joined(separator: "\n"))")

        let password = try String(contentsOfFile: "\(dir)/pg-password", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pgPort = try #require(Int(try String(contentsOfFile: "\(dir)/pg-port", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let asHub = TestDatabase(url: DatabaseURL(host: "127.0.0.1", port: pgPort, username: "fleetwatch", password: password, database: "fleetwatch"))
        // What the hub's role may not do.
        for statement in ["CREATE ROLE intruder LOGIN", "SELECT rolpassword FROM pg_authid", "COPY (SELECT 1) TO PROGRAM 'true'",
                          "CREATE DATABASE another", "ALTER ROLE fleetwatch SUPERUSER", "SELECT pg_read_file('/etc/passwd')"] {
            #expect(await Self.sqlState(asHub, statement) == "42501", "\(statement) was not refused for lack of privilege")
        }
        // What it does own.
        #expect(await Self.sqlState(asHub, "SELECT count(*) FROM bots") == nil)
        let owner = try await asHub.withClient { c in
            try await c.query("SELECT tableowner::text FROM pg_tables WHERE tablename = 'bots'", logger: Logger(label: "t")).decode(String.self).all()
        }
        #expect(owner == ["fleetwatch"])

        // An analyst's login, made through the cluster's superuser; read-only.
        let add = try ChildProcess(builtExecutable("monitor-hub"), ["analysts", "add", "ana", "--data-dir", dir, "--log-level", "error"],
                                   logPath: "\(Self.artifacts)/fw-embedded-analyst.log")
        #expect(await add.stop(signal: 0, timeout: .seconds(60)) == 0, "\(add.log)")
        let analystPassword = try #require(add.log.split(separator: "\n").last.map(String.init))
        let asAnalyst = TestDatabase(url: DatabaseURL(host: "127.0.0.1", port: pgPort, username: "ana", password: analystPassword, database: "fleetwatch"))
        #expect(await Self.sqlState(asAnalyst, "SELECT count(*) FROM review_bot_day") == nil)
        #expect(await Self.sqlState(asAnalyst, "SELECT token_hash FROM bots") == "42501")
        #expect(await Self.sqlState(asAnalyst, "DELETE FROM alerts") != nil)

        // A login whose password comes from a file (Grafana's, in compose's grafana-login service): made, then re-keyed by the
        // same command run again; the hub's own role is never taken for an analyst.
        func addWithFile(_ name: String, _ password: String) async throws -> (Int32, String) {
            let file = "\(Self.artifacts)/fw-analyst-\(name)-password"
            try password.write(toFile: file, atomically: true, encoding: .utf8)
            let p = try ChildProcess(builtExecutable("monitor-hub"), ["analysts", "add", name, "--password-file", file, "--data-dir", dir, "--log-level", "error"],
                                     logPath: "\(Self.artifacts)/fw-embedded-analyst-\(name).log")
            return (await p.stop(signal: 0, timeout: .seconds(60)), p.log)
        }
        let (first, firstLog) = try await addWithFile("grafana", "grafana-password-one")
        #expect(first == 0 && firstLog.contains("created"), "\(firstLog)")
        let (again, againLog) = try await addWithFile("grafana", "grafana-password-two")
        #expect(again == 0 && againLog.contains("password set"), "\(againLog)")
        let grafana = { (password: String) in
            TestDatabase(url: DatabaseURL(host: "127.0.0.1", port: pgPort, username: "grafana", password: password, database: "fleetwatch"))
        }
        #expect(await Self.sqlState(grafana("grafana-password-two"), "SELECT count(*) FROM review_bot_week") == nil)
        #expect(await Self.sqlState(grafana("grafana-password-one"), "SELECT 1") != nil, "the old password still works")
        let (hubRole, hubRoleLog) = try await addWithFile("fleetwatch", "a-long-enough-password")
        #expect(hubRole != 0 && hubRoleLog.contains("not an analyst login"), "\(hubRoleLog)")
        #expect(await hub.stop(signal: SIGTERM, timeout: .seconds(30)) == 0)
    }

    static let smtpCapture = """
        import email, json, sys, time
        from email import policy
        from aiosmtpd.controller import Controller
        port, out = int(sys.argv[1]), sys.argv[2]
        class Capture:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
                record = {"mail_from": envelope.mail_from, "rcpt": envelope.rcpt_tos, "headers": list(msg.keys()),
                          "subject": str(msg["Subject"]), "body": msg.get_content()}
                with open(out, "a") as f:
                    f.write(json.dumps(record) + "\\n")
                return "250 OK"
        Controller(Capture(), hostname="127.0.0.1", port=port).start()
        while True:
            time.sleep(3600)
        """

    /// Runs the verification code of docs/alerts.md (the block after `<!-- webhook-verify -->`) as a receiver;
    /// `?skew=S` moves its clock S seconds ahead, `?reset=1` forgets the signatures it has seen.
    static let webhookReceiver = """
        import json, sys, time
        from http.server import BaseHTTPRequestHandler, HTTPServer
        from urllib.parse import urlparse, parse_qs
        snippet, port, secret, out = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4]
        exec(open(snippet).read())
        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self):
                query = parse_qs(urlparse(self.path).query)
                if "reset" in query:
                    seen.clear()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify(secret, self.headers.get("X-Fleetwatch-Signature", ""), body,
                            now=time.time() + float(query.get("skew", ["0"])[0]))
                with open(out, "a") as f:
                    f.write(json.dumps({"ok": ok, "signature": self.headers.get("X-Fleetwatch-Signature", ""),
                                        "delivery": self.headers.get("X-Fleetwatch-Delivery", ""), "body": body.decode()}) + "\\n")
                self.send_response(200 if ok else 401)
                self.end_headers()
            def log_message(self, *args):
                pass
        HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
        """

    static func jsonLines(_ path: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// A stop reason crafted to add a Bcc header and to end the SMTP data early reaches the mail as text, to one
    /// recipient, in one message; webhook deliveries replayed, replayed late or altered are refused by the
    /// receiver code docs/alerts.md gives.
    @Test(.timeLimit(.minutes(3)))
    func hostileReasonsInMailAndReplayedWebhooks() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["mail-bot"], token: "secret", in: db)
        let dir = "\(Self.artifacts)/fw-notify-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (smtpPort, hookPort) = (try freeTCPPort(), try freeTCPPort())
        try Self.smtpCapture.write(toFile: "\(dir)/smtp.py", atomically: true, encoding: .utf8)
        try Self.webhookReceiver.write(toFile: "\(dir)/receiver.py", atomically: true, encoding: .utf8)
        let doc = try String(contentsOfFile: "\(DatabaseTLSTests.repo)/docs/alerts.md", encoding: .utf8)
        let afterMarker = try #require(doc.components(separatedBy: "<!-- webhook-verify -->\n```python\n").dropFirst().first)
        let snippet = try #require(afterMarker.components(separatedBy: "\n```").first)
        try snippet.write(toFile: "\(dir)/verify.py", atomically: true, encoding: .utf8)
        let smtp = try ChildProcess("/usr/bin/env", ["python3", "-u", "\(dir)/smtp.py", "\(smtpPort)", "\(dir)/mail.jsonl"], logPath: "\(dir)/smtp.log")
        defer { kill(smtp.pid, SIGKILL) }
        let receiver = try ChildProcess("/usr/bin/env", ["python3", "-u", "\(dir)/receiver.py", "\(dir)/verify.py", "\(hookPort)", "hook-secret",
                                                         "\(dir)/hook.jsonl"], logPath: "\(dir)/receiver.log")
        defer { kill(receiver.pid, SIGKILL) }
        #expect(try await eventually(.seconds(20)) { LoopbackPort.accepts(smtpPort) && LoopbackPort.accepts(hookPort) }, "\(smtp.log)\(receiver.log)")
        let config = "\(dir)/hub.json"
        try """
            {"alerts": {"console_alerts": false, "email_notifications": true, "webhook_notifications": true,
                        "email": {"host": "127.0.0.1", "port": \(smtpPort), "security": "plain", "from": "hub@fleet.test",
                                  "to": ["ops@fleet.test"], "min_level": "CRITICAL"},
                        "webhook": {"url": "http://127.0.0.1:\(hookPort)/hook", "secret": "hook-secret", "min_level": "CRITICAL"}}}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }

        let reason = "runaway\r\nBcc: attacker@evil.test\r\n.\r\nMAIL FROM:<x@evil.test>\r\nRCPT TO:<attacker@evil.test>\r\nDATA\r\nSubject: forged"
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["reason": reason]), as: UTF8.self)
        let (status, answer) = try await api("POST", port: hub.port, path: "/api/bots/mail-bot/emergency-stop", body: body)
        #expect(status == 202, "\(answer)")

        #expect(try await eventually(.seconds(30)) { !Self.jsonLines("\(dir)/mail.jsonl").isEmpty }, "\(smtp.log)")
        #expect(try await eventually(.seconds(30)) { Self.jsonLines("\(dir)/hook.jsonl").contains { $0["ok"] as? Bool == true } }, "\(receiver.log)")
        try await Task.sleep(for: .seconds(1))
        let mails = Self.jsonLines("\(dir)/mail.jsonl")
        #expect(mails.count == 1, "\(mails)")
        let mail = try #require(mails.first)
        #expect(mail["rcpt"] as? [String] == ["ops@fleet.test"] && mail["mail_from"] as? String == "hub@fleet.test")
        #expect(mail["headers"] as? [String] == ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                                                  "Content-Transfer-Encoding"], "\(mail["headers"] ?? "")")
        let subject = mail["subject"] as? String ?? ""
        #expect(subject.contains("runawayBcc: attacker@evil.test.MAIL FROM:<x@evil.test>") && !subject.contains("\n"), "\(subject)")
        #expect((mail["body"] as? String ?? "").contains("runaway"))

        // The webhook delivery passed the documented check; the same request again, late, or altered does not.
        let delivered = try #require(Self.jsonLines("\(dir)/hook.jsonl").first { $0["ok"] as? Bool == true })
        let signature = try #require(delivered["signature"] as? String)
        let payload = try #require(delivered["body"] as? String)
        #expect(signature.hasPrefix("t=") && signature.contains(",v1="))
        #expect((delivered["delivery"] as? String ?? "").range(of: #"^[0-9]+-fired-[0-9]+$"#, options: .regularExpression) != nil,
                "\(delivered["delivery"] ?? "")")
        func replay(_ query: String, _ body: String = payload) async throws -> Int {
            try await http("POST", port: hookPort, path: "/hook\(query)", body: body, token: nil,
                           headers: [("X-Fleetwatch-Signature", signature)]).0
        }
        #expect(try await replay("") == 401)                    // replayed within the window
        #expect(try await replay("?reset=1&skew=301") == 401)   // replayed after the tolerance window
        #expect(try await replay("?reset=1") == 200)            // the same, fresh and unseen: authentic
        #expect(try await replay("?reset=1", payload.replacingOccurrences(of: "runaway", with: "all good")) == 401)   // altered
    }

    /// A query stuck behind a lock, then a database gone: the API answers 503 with a sentence and a reference,
    /// never SQL, a connection string or internal types.
    @Test(.timeLimit(.minutes(3)))
    func outagesAndSlowQueriesLeakNothing() async throws {
        let pg = PrivatePostgres.forTest("fw-leak")
        let dir = pg.directory
        try await pg.whileRunning { server in
            let db = try await TestDatabase.create(on: server, prefix: "fw_leak_", logger: Logger(label: "t"))
            try await registerBots(["leak-bot"], token: "secret", in: db)
            let config = "\(dir)-hub.json"
            try #"{"hub": {"statement_timeout": 2}}"#.write(toFile: config, atomically: true, encoding: .utf8)
            let hub = try HubUnderTest(database: db)
            try await hub.start(extra: ["--config", config])
            defer { Task { await hub.kill(SIGTERM) } }
            func leaks(_ body: String) -> [String] {
                ["postgres://", "SELECT", "FROM bots", "PSQLError", "fleetwatch@", "\(server.port)", "sqlState", "Connection"].filter { body.contains($0) }
            }

            // A query held behind a lock: cancelled at the deadline, 503 with a reference.
            let (status, body) = try await db.withClient { client in
                try await client.withConnection { connection in
                    _ = try await connection.query("BEGIN", logger: Logger(label: "t"))
                    _ = try await connection.query("LOCK TABLE bots IN ACCESS EXCLUSIVE MODE", logger: Logger(label: "t"))
                    defer { Task { _ = try? await connection.query("ROLLBACK", logger: Logger(label: "t")) } }
                    return try await api("GET", port: hub.port, path: "/api/bots")
                }
            }
            #expect(status == 503 && body.contains("did not answer in time") && body.contains("ref "), "\(body)")
            #expect(leaks(body).isEmpty, "\(leaks(body)): \(body)")
            #expect(hub.log.contains("canceling statement due to statement timeout"), "\(hub.log.suffix(2000))")
            #expect(try await api("GET", port: hub.port, path: "/api/bots").0 == 200)   // the lock is gone: served again

            // The database stopped: reads and a stop answer 503, naming the problem only.
            try await pg.stop()
            for (method, path, payload) in [("GET", "/api/bots", nil), ("GET", "/api/alerts", nil),
                                            ("POST", "/api/bots/leak-bot/emergency-stop", #"{"reason": "db down"}"#)] {
                let (code, text) = try await api(method, port: hub.port, path: path, body: payload)
                #expect(code == 503, "\(method) \(path): \(code) \(text)")
                #expect(text.contains("database") && leaks(text).isEmpty, "\(method) \(path): \(text)")
            }
        }
    }
}
