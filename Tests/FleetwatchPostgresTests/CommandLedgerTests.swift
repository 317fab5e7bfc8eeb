import FleetwatchControl
import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The command ledger against PostgreSQL: only the lease holder reports and declares, a refused command stays
/// open, a completed one is re-sent as the latched command, and concurrent automatic stops create one command.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct CommandLedgerTests {
    /// Results and declarations count only from the connection that holds the bot's lease.
    @Test(.timeLimit(.minutes(2)))
    func onlyTheLeaseHolderReportsAndDeclares() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["lease-bot"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let logger = Logger(label: "test")
            let store = PostgresIngestStore(client: client, logger: logger)
            let ledger = CommandLedger(client: client, logger: logger)
            let hello = Hello(botID: "lease-bot", token: "secret", agentVersion: "t", bootEpoch: 1, lastAckedSequence: 0)
            guard case .accepted(let old) = try await store.authenticate(hello, connectionID: UUID(), hub: "h"),
                  case .accepted(let new) = try await store.authenticate(hello, connectionID: UUID(), hub: "h") else {
                Issue.record("not accepted"); return
            }
            let stale = EmergencyDeclaration(commandID: CommandID.random(), declaredAtMs: 1, actions: .emergencyStop, reason: "stale")
            let fresh = EmergencyDeclaration(commandID: CommandID.random(), declaredAtMs: 1, actions: .emergencyStop, reason: "fresh")
            #expect(try await ledger.recordDeclaration(stale, botID: old.botID, botName: "lease-bot", connectionID: old.connectionID, hub: "h").recorded == false)
            #expect(try await ledger.recordDeclaration(fresh, botID: new.botID, botName: "lease-bot", connectionID: new.connectionID, hub: "h").recorded)
            let result = CommandResultFrame(commandID: fresh.commandID, step: 0, status: .completed, atMs: 1, detail: "done")
            #expect(try await ledger.record(result, botID: old.botID, connectionID: old.connectionID) == nil)
            #expect(try await ledger.record(result, botID: new.botID, connectionID: new.connectionID) == "completed")
        }
    }

    /// A refused command stays open and is delivered again; completed, it is re-sent as the latched command;
    /// three automatic stops at once on an unlatched bot create one command.
    @Test(.timeLimit(.minutes(2)))
    func theLedgerKeepsARefusedCommandOpenAndRaceFreeAutomaticStops() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["ledger-bot"], token: "secret", in: db)
        try await db.withClient { client in
            let logger = Logger(label: "test")
            let ledger = CommandLedger(client: client, logger: logger)
            let botID = try await client.query("SELECT id FROM bots WHERE name = 'ledger-bot'", logger: logger)
                .decode(Int32.self).first { _ in true }!
            guard case .created(let stop) = try await ledger.requestStop(
                bot: "ledger-bot", actor: Actor(name: "t", kind: .operator), origin: .operator, reason: "r", liquidate: false)
            else { Issue.record("no command"); return }
            #expect(try await ledger.takeOnConnect(botID: botID, hub: "h").map(\.id) == [stop.id])
            // Refused (say, an expired frame): recorded, audited, still open, delivered again on the next connection.
            let refused = CommandResultFrame(commandID: stop.id, step: 0, status: .refused, atMs: 1, detail: "command expired")
            #expect(try await ledger.record(refused, botID: botID, connectionID: nil) == "delivered")
            #expect(try await ledger.command(id: stop.id)?.steps.map(\.status) == ["refused"])
            #expect(try await ledger.takeOnConnect(botID: botID, hub: "h").first?.actions == .emergencyStop)
            // Completed, then sent again as the latched command: stop trading and latch only.
            for (step, status) in [(UInt8(0), CommandResultFrame.Status.received), (1, .succeeded), (2, .succeeded), (8, .succeeded), (0, .completed)] {
                try await ledger.record(CommandResultFrame(commandID: stop.id, step: step, status: status, atMs: 2, detail: ""), botID: botID, connectionID: nil)
            }
            #expect(try await ledger.command(id: stop.id)?.state == "completed")
            #expect(try await ledger.takeOnConnect(botID: botID, hub: "h").first?.actions == [.stopTrading, .latchEmergency])
            // Two automatic stops at once on a latched bot create nothing; at most one on an unlatched one.
            try await client.query("UPDATE bots SET emergency_command_id = NULL WHERE id = \(botID)", logger: logger)
            let outcomes = try await withThrowingTaskGroup(of: CommandRequestOutcome.self) { group in
                for rule in ["emergency_shutdown.memory_usage_mb", "emergency_shutdown.daily_pnl_loss_limit", "emergency_shutdown.api_error_rate_percent"] {
                    group.addTask {
                        try await ledger.requestStop(bot: "ledger-bot", actor: Actor(name: rule, kind: .rule), origin: .rule,
                                                     reason: "auto", liquidate: false)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { if case .created = $0 { return true } else { return false } }.count == 1, "\(outcomes)")
        }
    }
}

/// A command id is a `uuid` column: bound and read without conversion, the same text as PostgreSQL's.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct CommandIDColumnTests {
    @Test func commandIDsBindAndReadAsUUIDs() async throws {
        let db = try await TestDatabase.create()
        try await db.withClient { client in
            let logger = Logger(label: "test")
            let id = CommandID.random()
            let text = try await client.query("SELECT \(id)::text", logger: logger).decode(String.self).first { _ in true }
            #expect(text == id.description)
            let back = try await client.query("SELECT \(id.description)::uuid", logger: logger).decode(CommandID.self).first { _ in true }
            #expect(back == id)
            let generated = try await client.query("SELECT u, u::text FROM (SELECT gen_random_uuid() AS u) x", logger: logger)
                .decode((CommandID, String).self).first { _ in true }
            #expect(generated.map { $0.0.description == $0.1 } == true)
            let list = try await client.query("SELECT array_length(\([id, CommandID.random()])::uuid[], 1)", logger: logger)
                .decode(Int.self).first { _ in true }
            #expect(list == 2)
        }
    }

    /// The hello's one statement says whether the bot has commands to be sent on connect, and agrees with the ledger's
    /// own read through a command's life: none, pending, refused (still open), completed and latched, unlatched.
    /// Without any, the ledger is not read at all when the bot connects.
    @Test(.timeLimit(.minutes(2)))
    func aHelloSaysWhetherCommandsWait() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["waiting-bot", "other-bot"], token: "secret", in: db)
        try await db.withClient { client in
            let logger = Logger(label: "test")
            let store = PostgresIngestStore(client: client, logger: logger)
            let ledger = CommandLedger(client: client, logger: logger)
            func connect(_ bot: String = "waiting-bot") async throws -> BotSession? {
                guard case .accepted(let s) = try await store.authenticate(
                    Hello(botID: bot, token: "secret", agentVersion: "t", bootEpoch: 1, lastAckedSequence: 0), connectionID: UUID(), hub: "h")
                else { return nil }
                return s
            }
            func check(_ expected: Bool, _ what: Comment) async throws {
                let session = try #require(try await connect())
                #expect(session.commandsWaiting == expected, what)
                // The ledger agrees (its read marks nothing new here: the command was delivered before).
                #expect(try await !ledger.takeOnConnect(botID: session.botID, hub: "h").isEmpty == expected, what)
            }
            try await check(false, "no command")
            guard case .created(let stop) = try await ledger.requestStop(
                bot: "waiting-bot", actor: Actor(name: "t", kind: .operator), origin: .operator, reason: "r", liquidate: false)
            else { Issue.record("no command"); return }
            try await check(true, "pending")
            // Another bot's command is not this bot's.
            #expect(try await connect("other-bot")?.commandsWaiting == false)
            let botID = try #require(try await connect()).botID
            let refused = CommandResultFrame(commandID: stop.id, step: 0, status: .refused, atMs: 1, detail: "command expired")
            #expect(try await ledger.record(refused, botID: botID, connectionID: nil) == "delivered")
            try await check(true, "refused, still open")
            for (step, status) in [(UInt8(0), CommandResultFrame.Status.received), (1, .succeeded), (2, .succeeded), (8, .succeeded), (0, .completed)] {
                try await ledger.record(CommandResultFrame(commandID: stop.id, step: step, status: status, atMs: 2, detail: ""), botID: botID, connectionID: nil)
            }
            try await check(true, "completed and latched")
            try await client.query("UPDATE bots SET emergency_command_id = NULL WHERE id = \(botID)", logger: logger)
            try await check(false, "unlatched, nothing open")
        }
    }
}
