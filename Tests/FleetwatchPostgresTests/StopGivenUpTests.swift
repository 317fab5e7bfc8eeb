@testable import FleetwatchHub
import FleetwatchAlerting
import FleetwatchControl
import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import Testing

/// An operator's stop is answered once: a stop whose ledger call is given up on when the database is noticed down
/// (break glass answers it instead) is never written later.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct StopGivenUpTests {
    /// The ledger's only connection is held, so the stop waits for it. The database is noticed down: break glass
    /// refuses the stop, since a stop during an outage never liquidates. Then the connection is free again. Before,
    /// the waiting ledger call went on and wrote the stop with its liquidation, latching the bot: a stop the operator
    /// was told was refused, delivered as soon as a replica saw it.
    @Test(.timeLimit(.minutes(2)))
    func aStopGivenUpOnWhileWaitingForAConnectionIsNotWrittenLater() async throws {
        try await InProcessHub.run(ledgerConnections: 1, breakGlass: true) { hub, http in
            var op = try await hub.token("ci-operator", .operator)
            try await hub.client.query("""
                INSERT INTO bots (name, token_hash, allow_liquidation) VALUES ('glass', \(BotToken.hash("secret")), true)
                """, logger: hub.logger)
            // Verified once while the database is up, so the replica accepts the token during the outage.
            #expect(try await http.execute(uri: "/api/bots", method: .get, headers: op).status == .ok)
            op[.contentType] = "application/json"
            let headers = op
            let answer = try await hub.ledgerClient.withConnection { _ in
                async let response = http.execute(uri: "/api/bots/glass/emergency-stop", method: .post, headers: headers,
                                                  body: ByteBuffer(string: #"{"reason": "runaway", "liquidate": true}"#))
                try await Task.sleep(for: .seconds(1))     // the stop waits for the ledger's connection
                hub.health.observed(failure: "test: the database is down")
                return try await response
            }
            #expect(answer.status == .conflict)
            #expect(try json(APIError.self, answer).error.message.contains("never liquidates"))
            // The connection is free again: nothing comes.
            try await Task.sleep(for: .seconds(2))
            let written = try await hub.client.query("SELECT count(*) FROM commands", logger: hub.logger).decode(Int64.self).all()
            #expect(written == [0])
            let latched = try await hub.client.query("""
                SELECT emergency_command_id IS NOT NULL FROM bots WHERE name = 'glass'
                """, logger: hub.logger).decode(Bool.self).all()
            #expect(latched == [false])
        }
    }

    /// A rule's automatic stop that is waiting for a database connection when the outage is noticed goes out by
    /// break glass at once, and is not written later. Before, it waited for the pool to fail (the runaway bot trading
    /// on), and then wrote the stop when the connection came free, with nothing sent during the outage.
    @Test(.timeLimit(.minutes(2)))
    func anAutomaticStopWaitingWhenTheDatabaseGoesDownTakesTheBreakGlassPath() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["runaway"], token: "secret", in: db)
        let logger = Logger(label: "test")
        let directory = NSTemporaryDirectory() + "fw-autostop-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await db.withClient(maxConnections: 1) { one in
            let botID = try await one.query("SELECT id FROM bots WHERE name = 'runaway'", logger: logger).decode(Int32.self).all()[0]
            let health = DatabaseHealth(url: db.url, logger: logger)       // not probing: up until the test says
            let connections = LiveConnections()
            let sent = Mutex<[Frame]>([])
            await connections.add(bot: "runaway", botID: botID, connectionID: UUID(), checkedAt: .now,
                                  push: { frame in sent.withLock { $0.append(frame) } }, close: { _, _ in })
            let journal = try BreakGlassJournal(directory: directory, logger: logger)
            let box = HubApplication.BreakGlassBox()
            box.set(BreakGlass(journal: journal, connections: connections, health: health, hubID: "hub-a",
                               frameTTL: .seconds(60), logger: logger))
            let stop = AutomaticStop(ledger: CommandLedger(client: one, logger: logger), breakGlass: box,
                                     emergencyAlerts: EmergencyAlerts(store: nil, sink: nil, logger: logger), hubID: "hub-a",
                                     logger: logger)
            let rule = Rule(id: "drawdown", kind: .above(metric: "drawdown_percent"), limit: 10, level: .critical,
                            summary: "Drawdown too deep")
            let outcome = Task { await stop(bot: "runaway", rule: rule, value: 25) }
            let sentDuringOutage = try await one.withConnection { _ in
                try await Task.sleep(for: .milliseconds(500))      // the stop waits for the ledger's connection
                health.observed(failure: "test: the database is down")
                return try await eventually(.seconds(10)) { sent.withLock { $0.count } == 1 }
            }
            #expect(sentDuringOutage, "the stop reached the bot while the database was down")
            guard case .created(let record)? = await outcome.value else {
                Issue.record("no stop was made"); return
            }
            #expect(record.issuedBy == "drawdown" && record.origin == CommandOrigin.rule.rawValue)
            #expect(await journal.unfinished(bot: "runaway").map(\.record.id) == [record.id])
            if case .command(let frame)? = sent.withLock({ $0.first }) {
                #expect(frame.commandID == record.id && !frame.actions.contains(.liquidate))
            } else {
                Issue.record("the bot got no command frame")
            }
            // The connection is free again: the ledger gets the stop only from the journal (reconcile), not twice.
            try await Task.sleep(for: .seconds(2))
            #expect(try await one.query("SELECT count(*) FROM commands", logger: logger).decode(Int64.self).all() == [0])
        }
    }

    /// The commands taken for a connecting bot, when that ledger call is given up on, stay pending for the
    /// dispatcher to send. Before, the call went on once a connection came free and marked them delivered, though
    /// nothing had been sent: the stop waited for the bot's next reconnect.
    @Test(.timeLimit(.minutes(2)))
    func commandsForAConnectingBotGivenUpOnStayPending() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["late-take"], token: "secret", in: db)
        let logger = Logger(label: "test")
        let directory = NSTemporaryDirectory() + "fw-late-take-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let botID = try await db.withClient { client in
            let outcome = try await CommandLedger(client: client, logger: logger)
                .requestStop(bot: "late-take", actor: Actor(name: "ci-operator", kind: .operator), origin: .operator,
                             reason: "runaway", liquidate: false)
            guard case .created = outcome else { throw WireError(.invalidField, "no stop: \(outcome)") }
            return try await client.query("SELECT id FROM bots WHERE name = 'late-take'", logger: logger).decode(Int32.self).all()[0]
        }
        try await db.withClient(maxConnections: 1) { one in
            let health = DatabaseHealth(url: db.url, logger: logger)       // not probing: up until the test says
            let glass = BreakGlass(journal: try BreakGlassJournal(directory: directory, logger: logger), connections: LiveConnections(),
                                   health: health, hubID: "hub-a", frameTTL: .seconds(60), logger: logger)
            let channel = LedgerCommandChannel(ledger: CommandLedger(client: one, logger: logger),
                                               alerts: EmergencyAlerts(store: nil, sink: nil, logger: logger), hubID: "hub-a",
                                               frameTTL: .seconds(60), breakGlass: glass)
            let session = BotSession(botID: botID, botName: "late-take", connectionID: UUID(), epoch: 1, storedSequence: 0)
            let taken = Task { try await channel.commandsOnConnect(session) }
            try await one.withConnection { _ in
                try await Task.sleep(for: .milliseconds(500))      // the call waits for the ledger's connection
                health.observed(failure: "test: the database is down")
                guard case .failure(let error) = await taken.result else { Issue.record("commands were taken"); return }
                #expect(error is DatabaseUnavailable, "\(error)")
            }
            // The connection is free again: nothing comes.
            try await Task.sleep(for: .seconds(2))
            let states = try await one.query("SELECT state FROM commands", logger: logger).decode(String.self).all()
            #expect(states == ["pending"])
        }
    }
}

