import FleetwatchAgent
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import Testing

/// `hub.read_database_url`: history comes from a real streaming standby, and says how far behind it is. With the
/// standby's replay paused, a value the primary has is not in the history until replay resumes.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct ReadReplicaTests {
    static var artifacts: String { ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory() }

    static func values(_ body: String) -> (values: [Double], age: Double?) {
        let series = jsonObject(body) as? [[String: Any]] ?? []
        let points = series.flatMap { ($0["points"] as? [[String: Any]]) ?? [] }
        return (points.compactMap { ($0["last"] as? NSNumber)?.doubleValue }, (series.first?["dataAgeSeconds"] as? NSNumber)?.doubleValue)
    }

    @Test(.timeLimit(.minutes(4)))
    func historyComesFromTheReplicaAndSaysHowOld() async throws {
        let primary = PrivatePostgres.forTest("fw-replica")
        let dir = primary.directory
        try await primary.whileRunning { server in
            let db = try await TestDatabase.create(on: server, prefix: "fw_replica_", logger: Logger(label: "t"))
            try await registerBots(["rr-bot"], token: "secret", in: db)
            let (standby, standbyServer) = try await primary.standby(in: dir + "-standby", synchronous: false)
            try await standby.removing {
                var readURL = db.url
                readURL.endpoints = [.init(host: "127.0.0.1", port: standbyServer.port)]
                let replica = TestDatabase(url: readURL)

                let hub = try HubUnderTest(database: db)
                let hubConfig = "\(dir)-hub.json"
                try #"{"dashboard": {"admin_password": "replica-test-password"}}"#.write(toFile: hubConfig, atomically: true, encoding: .utf8)
                try await hub.start(extra: ["--config", hubConfig], environment: ["FLEETWATCH_READ_DATABASE_URL": readURL.urlString])
                defer { Task { await hub.kill(SIGTERM) } }
                #expect(hub.log.contains("history and reports read from"), "\(hub.log.suffix(1500))")
                var config = AgentConfiguration(hubURL: hub.agentURL, botID: "rr-bot", token: "secret")
                config.flushInterval = .milliseconds(200)
                config.processCollector = false
                let agent = try MonitorAgent(configuration: config, logger: Logger(label: "agent"))
                let run = Task { try await agent.run() }
                defer { run.cancel() }
                let path = "/api/metrics/history?bot=rr-bot&metric=cpu_usage&range=1h"

                agent.gauge("cpu_usage").set(11)
                agent.gauge("total_pnl").set(5)
                #expect(try await eventually(.seconds(30)) { Self.values(try await api("GET", port: hub.port, path: path).1).values.contains(11) })
                #expect(try await eventually(.seconds(10)) { Self.values(try await api("GET", port: hub.port, path: path).1).age == 0 })

                // Replay paused on the standby: the primary stores 22, the history (from the standby) does not have it.
                try await replica.withClient { client in _ = try await client.query("SELECT pg_wal_replay_pause()", logger: Logger(label: "t")) }
                agent.gauge("cpu_usage").set(22)
                #expect(try await eventually(.seconds(30)) {
                    try await db.withClient { client in
                        try await client.query("SELECT count(*) FROM sample_points WHERE bot = 'rr-bot' AND metric = 'cpu_usage' AND value = 22",
                                               logger: Logger(label: "t")).decode(Int64.self).first { _ in true } ?? 0
                    } > 0
                })
                #expect(try await eventually(.seconds(20)) { (Self.values(try await api("GET", port: hub.port, path: path).1).age ?? 0) >= 2 })
                let (_, behind) = try await api("GET", port: hub.port, path: path)
                #expect(!Self.values(behind).values.contains(22), "\(behind)")
                // The dashboard says so above the bot's charts.
                let browser = try await WebDriver(logPath: "\(Self.artifacts)/\(db.url.database)-chromedriver.log")
                defer { Task { await browser.quit() } }
                let base = "http://127.0.0.1:\(hub.port)"
                try await browser.open(base + "/")
                try await browser.waitFor("the sign-in form", "return !!document.querySelector('#username');")
                try await browser.type("#username", "admin")
                try await browser.type("#password", "replica-test-password")
                try await browser.click("#login-button")
                try await browser.waitFor("the fleet", "return !!document.querySelector('#fleet-table tr[data-bot=\"rr-bot\"]');")
                try await browser.open(base + "/#/bot/rr-bot")
                try await browser.waitFor("the replica's lag above the charts", timeout: .seconds(30),
                                          "const n = document.querySelector('[data-role=\"data-age\"]'); return !!n && !n.hidden && /read replica, up to [0-9]+ s behind/.test(n.textContent);")

                // Replay resumed: the value arrives, and the replica is up to date again.
                try await replica.withClient { client in _ = try await client.query("SELECT pg_wal_replay_resume()", logger: Logger(label: "t")) }
                #expect(try await eventually(.seconds(30)) { Self.values(try await api("GET", port: hub.port, path: path).1).values.contains(22) })
                #expect(try await eventually(.seconds(10)) { Self.values(try await api("GET", port: hub.port, path: path).1).age == 0 })
            }
        }
    }
}
