import AsyncHTTPClient
import FleetwatchAgent
import NIOSSL
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import Testing

/// Token revocation on a live connection and the rate limit of stop requests, against real hubs.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct SecurityTests {
    @Test(.timeLimit(.minutes(3)))
    func revokingATokenClosesTheOpenConnectionOnAnyReplica() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["revoked-bot"], token: "secret", in: db)
        let hubA = try HubUnderTest(database: db, name: "hub-a")
        let hubB = try HubUnderTest(database: db, name: "hub-b")
        try await hubA.start()
        try await hubB.start()
        defer { Task { await hubA.kill(SIGTERM); await hubB.kill(SIGTERM) } }
        let agent = try AlertEndToEndTests.agent("revoked-bot", hub: hubB.agentURL)
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        #expect(try await eventually { await agent.status.connected })
        // Revoked with the CLI (no hub involved): the replica holding the connection closes it with 4002.
        let (status, out) = try await DeploymentTests.run(builtExecutable("monitor-hub"),
            ["bots", "revoke", "revoked-bot", "--database-url", db.url.urlString, "--log-level", "error"], name: "\(db.url.database)-revoke")
        #expect(status == 0, "\(out)")
        #expect(try await eventually(.seconds(15)) { await agent.status.lastCloseCode == 4002 })
        try await Task.sleep(for: .seconds(1))
        #expect(await agent.status.connected == false, "a revoked bot got back in")
        #expect(hubB.log.contains("token revoked or rotated"))
    }

    @Test(.timeLimit(.minutes(2)))
    func stopRequestsAreRateLimitedPerToken() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["limit-1", "limit-2", "limit-3", "limit-4"], token: "secret", in: db)
        let config = #"{"alerts": {"console_alerts": false}, "emergency": {"requests_per_minute": 3}}"#
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: config)
        defer { Task { await hub.kill(SIGTERM) } }
        var statuses: [Int] = []
        for bot in ["limit-1", "limit-2", "limit-3", "limit-4"] {
            statuses.append(try await api("POST", port: hub.port, path: "/api/bots/\(bot)/emergency-stop", body: #"{"reason": "x"}"#).0)
        }
        #expect(statuses == [202, 202, 202, 429])
        #expect(try await EmergencyStopTests.scalar(db, Int64.self, "SELECT count(*) FROM commands") == 3)
        #expect(try await EmergencyStopTests.scalar(db, Int64.self,
            "SELECT count(*) FROM audit_log WHERE detail = 'rate limited' AND actor = 'test-operator'") == 1)
    }
}

/// The hub over TLS: HTTPS for the API, wss:// for agents, verified against the hub's certificate.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct TLSTests {
    @Test(.timeLimit(.minutes(3)))
    func agentsAndTheAPISpeakTLS() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["tls-bot"], token: "secret", in: db)
        let (cert, key) = try await EmailAlertTests.certificate()
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--tls-cert", cert, "--tls-key", key], environment: ["FLEETWATCH_ADMIN_PASSWORD": "tls-admin-password"],
                            waitForReady: false)
        defer { Task { await hub.kill(SIGTERM) } }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(cert))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        func get(_ path: String, token: String? = operatorToken) async throws -> Int {
            var request = HTTPClientRequest(url: "https://127.0.0.1:\(hub.port)\(path)")
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            let response = try await client.execute(request, timeout: .seconds(5))
            _ = try await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        }
        #expect(try await eventually(.seconds(60)) { (try? await get("/health/ready", token: nil)) == 200 }, "\(hub.log)")
        #expect(try await get("/api/bots") == 200)
        // No plaintext on the TLS port.
        #expect(try await HubUnderTest.httpGet(port: hub.port, path: "/health/live") != 200)
        // The dashboard over HTTPS: its session cookie is Secure (never sent over plain HTTP) as well as HttpOnly.
        var login = HTTPClientRequest(url: "https://127.0.0.1:\(hub.port)/auth/login")
        login.method = .POST
        login.headers.add(name: "Content-Type", value: "application/json")
        login.body = .bytes(ByteBuffer(string: #"{"username": "admin", "password": "tls-admin-password"}"#))
        let signedIn = try await client.execute(login, timeout: .seconds(10))
        _ = try await signedIn.body.collect(upTo: 1 << 20)
        let cookie = signedIn.headers["Set-Cookie"].first ?? ""
        #expect(signedIn.status.code == 200 && cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
                "\(signedIn.status) \(cookie)")
        #expect(try await get("/", token: nil) == 200)
        // No secret reaches the log: not the configured password, not the API token that was used.
        #expect(!hub.log.contains("tls-admin-password") && !hub.log.contains(operatorToken))

        // An agent that trusts the hub's certificate streams over wss://.
        var c = AgentConfiguration(hubURL: "wss://localhost:\(hub.port)/agent/v1", botID: "tls-bot", token: "secret")
        c.flushInterval = .seconds(3600)
        c.processCollector = false
        c.trustedCertificatesPath = cert
        c.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(300))
        let agent = try MonitorAgent(configuration: c, logger: Logger(label: "agent"))
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        try await AlertEndToEndTests.send(agent, memory: 123)
        let trusting = await agent.status
        #expect(trusting.ackedBatches >= 1, "\(trusting)")
        // One that does not trust it never connects: the certificate is verified.
        c.trustedCertificatesPath = nil
        c.botID = "tls-bot"
        let untrusting = try MonitorAgent(configuration: c, logger: Logger(label: "agent"))
        let task2 = Task { try await untrusting.run() }
        defer { task2.cancel() }
        #expect(try await eventually(.seconds(20)) { await untrusting.status.lastError != nil })
        let status = await untrusting.status
        #expect(!status.connected && status.ackedBatches == 0, "\(status)")
        try await client.shutdown()
    }
}
