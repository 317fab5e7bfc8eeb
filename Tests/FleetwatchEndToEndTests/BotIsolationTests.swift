import FleetwatchAgent
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// Issue 13's bounds one by one, against real hubs and PostgreSQL: liquidation only where allowed, metric-name
/// limits that replicas and restarts agree on, a lease only the newest connection holds, and readiness that
/// says when batches cannot be stored.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct BotIsolationTests {
    static func count(_ db: TestDatabase, _ query: PostgresQuery) async throws -> Int64 {
        try await EmergencyStopTests.scalar(db, Int64.self, query) ?? -1
    }

    /// Liquidation is granted at the request and again at every send: switched off before the bot got the
    /// command, it goes out without it; a bot's own declaration is held to the same rule.
    @Test(.timeLimit(.minutes(4)))
    func liquidationIsGrantedOnlyWhereAllowedAtEverySend() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["liq-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        _ = try await HostileBotTests.cli(["bots", "liquidation", "liq-bot", "on"], db)

        // Asked for and allowed while the bot is offline: pending, with liquidation.
        let (status, body) = try await api("POST", port: hub.port, path: "/api/bots/liq-bot/emergency-stop",
                                           body: #"{"reason": "runaway", "liquidate": true}"#)
        #expect(status == 202, "\(body)")
        let id = try #require((jsonObject(body) as? [String: Any])?["id"] as? String)
        #expect((jsonObject(body) as? [String: Any])?["liquidate"] as? Bool == true)
        // Switched off before delivery: the bot never hears of liquidation.
        _ = try await HostileBotTests.cli(["bots", "liquidation", "liq-bot", "off"], db)
        let handler = EmergencyStopTests.RecordingHandler(liquidationEnabled: true)
        let agent = try await EmergencyStopTests.agent("liq-bot", hub: hub.agentURL, handler: handler)
        let run = Task { try await agent.run() }
        let done = try await EmergencyStopTests.waitForState(hub.port, id, "completed")
        #expect(handler.all == ["stop", "cancel", "latch"])
        #expect(done["liquidate"] as? Bool == false && done["liquidationRequested"] as? Bool == true)
        #expect((done["liquidationRefused"] as? String)?.contains("switched off") == true, "\(done)")
        #expect(try await Self.count(db, "SELECT count(*) FROM audit_log WHERE command_id = \(UUID(uuidString: id)!) AND action = 'liquidation.refused'") == 1)
        // An operator asking now is refused outright (409), and audited.
        #expect(try await api("POST", port: hub.port, path: "/api/bots/liq-bot/emergency-stop",
                              body: #"{"reason": "again", "liquidate": true}"#).0 == 409)

        // The bot's own declaration asks for liquidation: the bot may run its own steps, but the hub records
        // no liquidation, and the latched command it re-sends after a reconnect carries none.
        let declared = await agent.declareEmergency(reason: "exchange halted", liquidate: true)
        let declaredID = declared
        #expect(try await eventually(.seconds(20)) {
            try await Self.count(db, """
                SELECT count(*) FROM commands WHERE id = \(declaredID) AND origin = 'bot' AND NOT liquidate
                  AND liquidation_requested AND liquidation_refused IS NOT NULL AND actions & 4 = 0
                """) == 1
        })
        run.cancel()
        _ = try? await run.value
        let before = handler.all.count
        let again = try await EmergencyStopTests.agent("liq-bot", hub: hub.agentURL, handler: handler)
        let rerun = Task { try await again.run() }
        defer { rerun.cancel() }
        #expect(try await eventually(.seconds(20)) { await again.status.emergencyMode })
        #expect(!handler.all.dropFirst(before).contains("liquidate"), "\(handler.all)")
        #expect(try await Self.count(db, "SELECT count(*) FROM audit_log WHERE command_id = \(UUID(uuidString: id)!) AND action = 'liquidation.refused'") == 1)
    }

    /// The name limit is counted in PostgreSQL: a bot that spreads new names over two replicas gets its limit
    /// once, restarts that re-send known names draw no ids, and raising the limit takes effect at once.
    @Test(.timeLimit(.minutes(4)))
    func metricNameLimitsHoldAcrossReplicasAndRestarts() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["spread-bot", "other-bot"], token: "secret", in: db)
        let config = #"{"hub": {"max_metric_names_per_bot": 1000}}"#
        let hubA = try HubUnderTest(database: db, name: "hub-a")
        let hubB = try HubUnderTest(database: db, name: "hub-b")
        try await hubA.start(config: config)
        try await hubB.start(config: config)
        defer {
            Task { await hubA.kill(SIGTERM) }
            Task { await hubB.kill(SIGTERM) }
        }
        var others: [Frame] = []
        // 600 names through A, then 600 others through B: 1,000 admitted, 200 refused.
        let a = try await ProtocolClient.connect(port: hubA.port, bot: "spread-bot", token: "secret")
        let seqA = try await a.sendBatch(ProtocolClient.names("a_", 0..<600))
        #expect(await a.ack(of: seqA, until: .now + .seconds(30), others: &others)?.refusedSamples == 0)
        a.close()
        let b = try await ProtocolClient.connect(port: hubB.port, bot: "spread-bot", token: "secret")
        let seqB = try await b.sendBatch(ProtocolClient.names("b_", 0..<600))
        #expect(await b.ack(of: seqB, until: .now + .seconds(30), others: &others)?.refusedSamples == 200)
        b.close()
        #expect(try await Self.count(db, "SELECT count(*) FROM bot_metrics bm JOIN bots b ON b.id = bm.bot_id WHERE b.name = 'spread-bot'") == 1000)

        // Three restarts, each followed by the bot re-sending all its known names: no id drawn.
        let sequence = try await Self.count(db, "SELECT last_value FROM metrics_id_seq")
        for round in 0..<3 {
            await hubA.kill(SIGTERM)
            try await hubA.start(config: config)
            let c = try await ProtocolClient.connect(port: hubA.port, bot: "spread-bot", token: "secret")
            var payload = ProtocolClient.names("a_", 0..<600)
            payload.series += ProtocolClient.names("b_", 0..<400).series
            let seq = try await c.sendBatch(payload)
            #expect(await c.ack(of: seq, until: .now + .seconds(30), others: &others)?.refusedSamples == 0, "round \(round)")
            c.close()
        }
        #expect(try await Self.count(db, "SELECT last_value FROM metrics_id_seq") == sequence)

        // Another bot is not affected by spread-bot's limit: its new names are stored.
        let other = try await ProtocolClient.connect(port: hubB.port, bot: "other-bot", token: "secret")
        let seqO = try await other.sendBatch(ProtocolClient.names("other_", 0..<10))
        #expect(await other.ack(of: seqO, until: .now + .seconds(30), others: &others)?.refusedSamples == 0)
        other.close()
        #expect(try await Self.count(db, "SELECT count(*) FROM sample_points WHERE bot = 'other-bot'") == 10)

        // Raising the bot's limit reaches both replicas at once (NOTIFY), without a restart.
        let shown = try await HostileBotTests.cli(["bots", "metric-names", "spread-bot", "--limit", "1200"], db)
        #expect(shown.contains("1200") && shown.contains("1000 names used"), "\(shown)")
        let d = try await ProtocolClient.connect(port: hubB.port, bot: "spread-bot", token: "secret")
        let seqD = try await d.sendBatch(ProtocolClient.names("b_", 400..<600))
        #expect(await d.ack(of: seqD, until: .now + .seconds(30), others: &others)?.refusedSamples == 0)
        d.close()
        let listed = try await HostileBotTests.cli(["bots", "metric-names", "spread-bot"], db)
        #expect(listed.contains("spread-bot uses 1200 metric names (limit: 1200)"), "\(listed.prefix(200))")
    }

    /// A lease taken on another replica closes the older connection at once; rotating the token closes every
    /// connection on every replica; a revocation whose notification was missed is caught by the lease check.
    @Test(.timeLimit(.minutes(3)))
    func leaseMovesAndRevocationCloseEveryConnectionOnEveryReplica() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["moving-bot"], token: "secret", in: db)
        let hubA = try HubUnderTest(database: db, name: "hub-a")
        let hubB = try HubUnderTest(database: db, name: "hub-b")
        // The connections below stay silent while the test waits on the CLI and the lease check: a long heartbeat
        // interval, so what closes them is what the test checks, not silence (4008 after two intervals).
        let quietAgents = #"{"hub": {"heartbeat_interval": 60}}"#
        try await hubA.start(config: quietAgents)
        try await hubB.start(config: quietAgents)
        defer {
            Task { await hubA.kill(SIGTERM) }
            Task { await hubB.kill(SIGTERM) }
        }
        let onA = try await ProtocolClient.connect(port: hubA.port, bot: "moving-bot", token: "secret")
        let onB = try await ProtocolClient.connect(port: hubB.port, bot: "moving-bot", token: "secret")
        #expect(await onA.ws.awaitClose(until: .now + .seconds(5)) == .closeFrame(CloseCode.replaced.rawValue))
        onA.close()
        // Rotation: the connection on B (and a fresh one on A that replaced it) end with 4002.
        let again = try await ProtocolClient.connect(port: hubA.port, bot: "moving-bot", token: "secret")
        #expect(await onB.ws.awaitClose(until: .now + .seconds(5)) == .closeFrame(CloseCode.replaced.rawValue))
        onB.close()
        let token = try await HostileBotTests.cli(["bots", "rotate-token", "moving-bot"], db).split(separator: "\n").last.map(String.init) ?? ""
        #expect(await again.ws.awaitClose(until: .now + .seconds(5)) == .closeFrame(CloseCode.authenticationFailed.rawValue))
        again.close()
        // A revocation written without its notification (as if the replica missed it): the lease check closes it.
        let quiet = try await ProtocolClient.connect(port: hubB.port, bot: "moving-bot", token: token)
        try await db.withClient { client in
            try await client.query("UPDATE bots SET token_hash = NULL, connection_id = NULL WHERE name = 'moving-bot'", logger: Logger(label: "test"))
        }
        #expect(await quiet.ws.awaitClose(until: .now + .seconds(15)) == .closeFrame(CloseCode.authenticationFailed.rawValue))
        quiet.close()
    }

    /// Lease moves are numbered: a move's notification delivered after a later move's connection registered (here
    /// the first move's notification, sent again by hand) closes nothing newer. CI met this: a bot reconnecting
    /// quickly was closed with 4007 by its previous connection's notification.
    @Test(.timeLimit(.minutes(3)))
    func aLateLeaseNotificationNeverClosesANewerConnection() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["late-bot", "marker-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: #"{"hub": {"heartbeat_interval": 60}}"#)
        defer { Task { await hub.kill(SIGTERM) } }
        let first = try await ProtocolClient.connect(port: hub.port, bot: "late-bot", token: "secret")
        let firstMove = try await Self.lease(of: "late-bot", db)
        let second = try await ProtocolClient.connect(port: hub.port, bot: "late-bot", token: "secret")
        #expect(await first.ws.awaitClose(until: .now + .seconds(5)) == .closeFrame(CloseCode.replaced.rawValue))
        first.close()
        let secondMove = try await Self.lease(of: "late-bot", db)
        #expect(secondMove.order > firstMove.order && secondMove.connection != firstMove.connection)
        // The first move's notification, late; then a move that closes a marker connection. Notifications arrive in
        // order, so once the marker is closed the late one was handled.
        let marker = try await ProtocolClient.connect(port: hub.port, bot: "marker-bot", token: "secret")
        try await Self.notifyLeaseMove("\(firstMove.connection)\tlate-bot\t\(firstMove.order)\thub", db)
        try await Self.notifyLeaseMove("\(UUID())\tmarker-bot\t\(Int64.max)\telsewhere", db)
        #expect(await marker.ws.awaitClose(until: .now + .seconds(10)) == .closeFrame(CloseCode.replaced.rawValue))
        marker.close()
        // The newer connection is open, and what it sends is stored.
        var others: [Frame] = []
        let sequence = try await second.sendBatch(ProtocolClient.names("m", 0..<3))
        #expect(await second.ack(of: sequence, until: .now + .seconds(10), others: &others) != nil)
        second.close()
        // Listening, the hub read the database's latest move to judge the numbers it hears by.
        #expect(!hub.log.contains("could not read the latest lease move"), "\(hub.log.suffix(2000))")
    }

    /// A connection whose lease move a later one, already heard of, overtook is closed at once as it registers
    /// (4007), and a connection of another bot is not.
    @Test(.timeLimit(.minutes(3)))
    func aConnectionOvertakenBeforeItRegistersIsClosedAtOnce() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["overtaken-bot", "bystander-bot", "marker-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: #"{"hub": {"heartbeat_interval": 60}}"#)
        defer { Task { await hub.kill(SIGTERM) } }
        // A move of overtaken-bot numbered above anything this database hands out, as if made and heard just before
        // the hello below committed; the marker's close says the hub has handled it.
        let marker = try await ProtocolClient.connect(port: hub.port, bot: "marker-bot", token: "secret")
        try await Self.notifyLeaseMove("\(UUID())\tovertaken-bot\t\(Int64.max - 1)\telsewhere", db)
        try await Self.notifyLeaseMove("\(UUID())\tmarker-bot\t\(Int64.max)\telsewhere", db)
        #expect(await marker.ws.awaitClose(until: .now + .seconds(10)) == .closeFrame(CloseCode.replaced.rawValue))
        marker.close()
        let overtaken = try await ProtocolClient.connect(port: hub.port, bot: "overtaken-bot", token: "secret")
        #expect(await overtaken.ws.awaitClose(until: .now + .seconds(10)) == .closeFrame(CloseCode.replaced.rawValue))
        overtaken.close()
        let bystander = try await ProtocolClient.connect(port: hub.port, bot: "bystander-bot", token: "secret")
        var others: [Frame] = []
        let sequence = try await bystander.sendBatch(ProtocolClient.names("m", 0..<3))
        #expect(await bystander.ack(of: sequence, until: .now + .seconds(10), others: &others) != nil)
        bystander.close()
    }

    static func lease(of bot: String, _ db: TestDatabase) async throws -> (connection: UUID, order: Int64) {
        try await db.withClient { client in
            let rows = try await client.query("SELECT connection_id, lease_order FROM bots WHERE name = \(bot)", logger: Logger(label: "test"))
            for try await (id, order) in rows.decode((UUID, Int64).self) { return (id, order) }
            throw TestSupportError("no bot \(bot)")
        }
    }

    static func notifyLeaseMove(_ payload: String, _ db: TestDatabase) async throws {
        try await db.withClient { client in
            try await client.query("SELECT pg_notify(\(PostgresIngestStore.leaseChannel), \(payload))", logger: Logger(label: "test"))
        }
    }

    /// Readiness turns 503 while batches cannot be stored although the database answers, and back after. A batch
    /// whose own data PostgreSQL refuses fails alone (4005) and leaves readiness alone.
    @Test(.timeLimit(.minutes(3)))
    func readinessSaysWhenBatchesCannotBeStored() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["ready-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        // The raw clients below send no heartbeats, and one waits unread while the test waits on the other: a long
        // interval, so that a slow machine cannot have them closed for silence (4008) before their answers.
        try await hub.start(config: #"{"hub": {"heartbeat_interval": 60}}"#)
        defer { Task { await hub.kill(SIGTERM) } }
        // Every insert into samples now fails as on a full disk (SQLSTATE 53100, not the batch's fault).
        try await db.withClient { client in
            let logger = Logger(label: "test")
            try await client.query("""
                CREATE FUNCTION fw_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$
                """, logger: logger)
            try await Self.retryingDeadlocks {
                try await client.query("CREATE TRIGGER fw_test_disk_full BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION fw_test_disk_full()",
                                       logger: logger)
            }
        }
        let bot = try await ProtocolClient.connect(port: hub.port, bot: "ready-bot", token: "secret")
        _ = try await bot.sendBatch(ProtocolClient.names("m", 0..<3))
        #expect(await bot.ws.awaitClose(until: .now + .seconds(20)) == .closeFrame(CloseCode.storageUnavailable.rawValue))
        bot.close()
        #expect(try await HubUnderTest.httpGet(port: hub.port, path: "/health/ready") == 503)
        try await db.withClient { client in
            // DROP TRIGGER locks samples and each of its partitions; the hub's background work may hold one of
            // them and wait for another (a deadlock PostgreSQL breaks after a second): test setup, so try again.
            try await Self.retryingDeadlocks { try await client.query("DROP TRIGGER fw_test_disk_full ON samples", logger: Logger(label: "test")) }
        }
        let again = try await ProtocolClient.connect(port: hub.port, bot: "ready-bot", token: "secret")
        var others: [Frame] = []
        let seq = try await again.sendBatch(ProtocolClient.names("m", 0..<3))
        #expect(await again.ack(of: seq, until: .now + .seconds(20), others: &others) != nil)
        again.close()
        #expect(try await HubUnderTest.httpGet(port: hub.port, path: "/health/ready") == 200)

        // PostgreSQL refuses one bot's rows for their data: that batch alone is refused (4005, the agent drops
        // it), the other bot's batches are stored, readiness stays 200.
        try await registerBots(["other-ready-bot"], token: "secret", in: db)
        try await db.withClient { client in
            let id = try await client.query("SELECT id FROM bots WHERE name = 'ready-bot'", logger: Logger(label: "test"))
                .decode(Int32.self).first { _ in true } ?? 0
            try await Self.retryingDeadlocks {
                try await client.query(PostgresQuery(unsafeSQL: "ALTER TABLE samples ADD CONSTRAINT fw_test_refuse_bot CHECK (bot_id <> \(id)) NOT VALID"),
                                       logger: Logger(label: "test"))
            }
        }
        let refused = try await ProtocolClient.connect(port: hub.port, bot: "ready-bot", token: "secret")
        let other = try await ProtocolClient.connect(port: hub.port, bot: "other-ready-bot", token: "secret")
        _ = try await refused.sendBatch(ProtocolClient.names("m", 0..<3))
        let otherSeq = try await other.sendBatch(ProtocolClient.names("m", 0..<3))
        #expect(await refused.ws.awaitClose(until: .now + .seconds(20)) == .closeFrame(CloseCode.badBatch.rawValue))
        #expect(await other.ack(of: otherSeq, until: .now + .seconds(20), others: &others) != nil)
        refused.close()
        other.close()
        #expect(try await HubUnderTest.httpGet(port: hub.port, path: "/health/ready") == 200)
    }

    /// `body` again after a deadlock or lock timeout, up to five times; any other error, or the last, with
    /// PostgreSQL's own message.
    static func retryingDeadlocks(_ body: () async throws -> Void) async throws {
        for attempt in 1...5 {
            do {
                try await body()
                return
            } catch let error as PSQLError where ["40P01", "55P03"].contains(error.serverInfo?[.sqlState] ?? "") && attempt < 5 {
                try await Task.sleep(for: .milliseconds(200))
            } catch {
                throw TestSupportError(String(reflecting: error))
            }
        }
    }
}
