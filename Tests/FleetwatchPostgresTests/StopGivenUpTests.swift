@testable import FleetwatchHub
import FleetwatchAlerting
import FleetwatchControl
import FleetwatchIngest
import FleetwatchProtocol
@testable import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import ServiceLifecycle
import Testing

/// What a ledger call given up on when the database is noticed down leaves behind: nothing written later, when a
/// pooled connection frees up, and the break-glass path taken where there is one.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct StopGivenUpTests {
    static let logger = Logger(label: "test")

    /// Holds `ledger`'s only connection, runs `call` until it waits for that connection, then marks the database
    /// down and returns `call`'s answer (still holding the connection: nothing `call` did went through the ledger).
    static func downWhileWaiting<T: Sendable>(_ ledger: CountingClient, _ health: DatabaseHealth,
                                              _ call: @escaping @Sendable () async throws -> T) async throws -> T {
        let before = ledger.calls
        return try await ledger.inner.withConnection { _ in
            let running = Task { try await call() }
            #expect(try await eventually(.seconds(30)) { ledger.calls > before }, "the call reached the pool")
            try await Task.sleep(for: .milliseconds(100))       // from asking the pool to waiting in it
            health.observed(failure: "test: the database is down")
            return try await running.value
        }
    }

    /// Sends a stop of `bot` while another transaction holds the bot's row, marks the database down once the stop's
    /// insert waits for that row (its statement is in PostgreSQL), and lets the insert go on after the answer.
    static func stopWhileItsInsertWaits(_ hub: InProcessHub, _ http: any TestClientProtocol, bot: String, headers: HTTPFields,
                                        body: String) async throws -> TestResponse {
        try await hub.client.withConnection { lock in
            try await lock.query("BEGIN", logger: hub.logger)
            try await lock.query("SELECT 1 FROM bots WHERE name = \(bot) FOR UPDATE", logger: hub.logger)
            let response = Task {
                try await http.execute(uri: "/api/bots/\(bot)/emergency-stop", method: .post, headers: headers,
                                       body: ByteBuffer(string: body))
            }
            #expect(try await eventually(.seconds(30)) {
                try await hub.client.query("""
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO commands%'
                    """, logger: hub.logger).decode(Int64.self).all() == [1]
            }, "the stop's statement waits for the bot's row")
            hub.health.observed(failure: "test: the database is down")
            let answer = try await response.value
            try await lock.query("COMMIT", logger: hub.logger)
            return answer
        }
    }

    /// A stop refused by break glass (it never liquidates) while its insert was already in PostgreSQL says that it
    /// may be recorded all the same, and where to look: here it is, the one case this stop leaves (postgres-nio sends
    /// no cancel for a statement under way). A refusal given up on before the insert (the first test) does not say so.
    @Test(.timeLimit(.minutes(2)))
    func aRefusalWhoseStatementWasUnderWaySaysTheStopMayBeRecorded() async throws {
        try await InProcessHub.run(breakGlass: true) { hub, http in
            let (op, _) = try await Self.operatorAndBot(hub, http, bot: "under-way", allowLiquidation: true)
            let answer = try await Self.stopWhileItsInsertWaits(hub, http, bot: "under-way", headers: op,
                                                                body: #"{"reason": "runaway", "liquidate": true}"#)
            #expect(answer.status == .conflict)
            let message = try json(APIError.self, answer).error.message
            #expect(message.contains("never liquidates") && message.contains("may be recorded all the same"), "\(message)")
            // The insert went on: the command named in the answer is there.
            let named = try #require(message.split(separator: "/api/commands/").last?.split(separator: " ").first.map(String.init))
            #expect(try await eventually(.seconds(30)) {
                try await hub.client.query("SELECT id::text FROM commands", logger: hub.logger).decode(String.self).all() == [named]
            })
        }
    }

    /// A bot on a fresh database, the ledger on a pool of one connection, a health that stays up (nothing probes
    /// it) until the test says, and break glass journalling in a directory of its own.
    struct Outage: Sendable {
        let ledger: CountingClient
        let health: DatabaseHealth
        let connections: LiveConnections
        let glass: BreakGlass
        let botID: Int32
    }

    static func withOutage(bot: String, _ body: @escaping @Sendable (Outage) async throws -> Void) async throws {
        let db = try await TestDatabase.create()
        try await registerBots([bot], token: "secret", in: db)
        let directory = NSTemporaryDirectory() + "fw-given-up-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await db.withClient(maxConnections: 1) { one in
            let botID = try await one.query("SELECT id FROM bots WHERE name = \(bot)", logger: logger).decode(Int32.self).all()[0]
            let health = DatabaseHealth(url: db.url, logger: logger)
            let connections = LiveConnections()
            let glass = BreakGlass(journal: try BreakGlassJournal(directory: directory, logger: logger), connections: connections,
                                   health: health, hubID: "hub-a", frameTTL: .seconds(60), logger: logger)
            try await body(Outage(ledger: CountingClient(one), health: health, connections: connections, glass: glass, botID: botID))
        }
    }

    static let drawdown = Rule(id: "drawdown", kind: .above(metric: "drawdown_percent"), limit: 10, level: .critical,
                               summary: "Drawdown too deep")

    static func automaticStop(_ o: Outage, client: (any PostgresQuerying)? = nil,
                              waiting: WaitingStops = WaitingStops(logger: logger)) -> AutomaticStop {
        let box = HubApplication.BreakGlassBox()
        box.set(o.glass)
        var stop = AutomaticStop(ledger: CommandLedger(client: client ?? o.ledger, logger: logger), breakGlass: box,
                                 emergencyAlerts: EmergencyAlerts(store: nil, sink: nil, logger: logger), hubID: "hub-a", logger: logger,
                                 waiting: waiting)
        stop.retryInterval = .milliseconds(100)
        return stop
    }

    /// The frames sent to a bot's connection.
    final class SentFrames: Sendable {
        private let frames = Mutex<[Frame]>([])
        func append(_ frame: Frame) { frames.withLock { $0.append(frame) } }
        var all: [Frame] { frames.withLock { $0 } }
    }

    /// Connects `bot` to this replica: the frames break glass sends it.
    static func connect(_ connections: LiveConnections, _ bot: String, _ botID: Int32) async -> SentFrames {
        let sent = SentFrames()
        await connections.add(bot: bot, botID: botID, connectionID: UUID(), checkedAt: .now,
                              push: { frame in sent.append(frame) }, close: { _, _ in })
        return sent
    }

    /// `bot` registered (allowing liquidation if asked), connected to the hub if asked, and an operator's token
    /// verified once while the database is up (so the replica accepts it during the outage): the operator's headers
    /// for a JSON request (with `idempotencyKey` if given), and the frames the bot's connection gets.
    static func operatorAndBot(_ hub: InProcessHub, _ http: any TestClientProtocol, bot: String, allowLiquidation: Bool = false,
                               connected: Bool = false, idempotencyKey: String? = nil) async throws -> (HTTPFields, SentFrames) {
        var op = try await hub.token("ci-operator", .operator)
        let botID = try await hub.client.query("""
            INSERT INTO bots (name, token_hash, allow_liquidation) VALUES (\(bot), \(BotToken.hash("secret")), \(allowLiquidation)) RETURNING id
            """, logger: hub.logger).decode(Int32.self).all()[0]
        let sent = connected ? await connect(hub.connections, bot, botID) : SentFrames()
        #expect(try await http.execute(uri: "/api/bots", method: .get, headers: op).status == .ok)
        op[.contentType] = "application/json"
        if let idempotencyKey { op[HTTPField.Name("Idempotency-Key")!] = idempotencyKey }
        return (op, sent)
    }

    static func commands(_ ledger: CountingClient) async throws -> [String] {
        try await ledger.inner.query("SELECT state FROM commands", logger: logger).decode(String.self).all()
    }

    /// The stop route's ledger call waits for the ledger's only connection; the database is noticed down and break
    /// glass refuses the stop, since a stop during an outage never liquidates. Then the connection is free again.
    /// Before, the waiting call went on and wrote the stop with its liquidation, latching the bot: a stop the operator
    /// was told was refused, delivered as soon as a replica saw it.
    @Test(.timeLimit(.minutes(2)))
    func aStopGivenUpOnWhileWaitingForAConnectionIsNotWrittenLater() async throws {
        try await InProcessHub.run(ledgerConnections: 1, breakGlass: true) { hub, http in
            let (headers, _) = try await Self.operatorAndBot(hub, http, bot: "glass", allowLiquidation: true)
            let answer = try await Self.downWhileWaiting(hub.ledgerClient, hub.health) {
                try await http.execute(uri: "/api/bots/glass/emergency-stop", method: .post, headers: headers,
                                       body: ByteBuffer(string: #"{"reason": "runaway", "liquidate": true}"#))
            }
            #expect(answer.status == .conflict)
            let message = try json(APIError.self, answer).error.message
            #expect(message.contains("never liquidates") && !message.contains("may be recorded"), "\(message)")
            // The connection is free again: nothing comes.
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.commands(hub.ledgerClient) == [])
            let latched = try await hub.client.query("""
                SELECT emergency_command_id IS NOT NULL FROM bots WHERE name = 'glass'
                """, logger: hub.logger).decode(Bool.self).all()
            #expect(latched == [false])
        }
    }

    /// An operator's stop whose statement is already in PostgreSQL (waiting for the bot's row, which another
    /// transaction holds) when the outage is noticed goes out by break glass, and the statement commits afterwards:
    /// both carry one id, so they are one command in the ledger, also after the journal is imported. Before, the
    /// ledger held two stops of the bot, and the second was delivered again.
    @Test(.timeLimit(.minutes(2)))
    func aStopWhoseStatementCommitsAfterItWasGivenUpOnIsOneCommand() async throws {
        try await InProcessHub.run(ledgerConnections: 2, breakGlass: true) { hub, http in
            let (headers, sent) = try await Self.operatorAndBot(hub, http, bot: "held", connected: true)
            let answer = try await Self.stopWhileItsInsertWaits(hub, http, bot: "held", headers: headers, body: #"{"reason": "runaway"}"#)
            #expect(answer.status == .accepted)
            let fields = try JSONSerialization.jsonObject(with: Data(String(buffer: answer.body).utf8)) as? [String: Any]
            let id = try #require(CommandID(fields?["id"] as? String ?? ""), "\(String(buffer: answer.body))")
            let sentIDs = sent.all.compactMap { frame -> CommandID? in
                if case .command(let f) = frame { return f.commandID }
                return nil
            }
            #expect(sentIDs == [id], "break glass sent the stop under the ledger call's id")
            // The statement commits; then the database answers and the journal is imported.
            #expect(try await eventually(.seconds(30)) { try await Self.commands(hub.ledgerClient) == ["pending"] })
            guard let glass = hub.breakGlass, let entry = await glass.journal.unfinished(bot: "held").first else {
                Issue.record("no break-glass entry"); return
            }
            // Imported twice, as by a replica killed after the import and before it deleted the file, then as usual.
            let ledger = CommandLedger(client: hub.client, logger: hub.logger)
            try await ledger.importBreakGlass(entry, hub: "hub-a")
            try await ledger.importBreakGlass(entry, hub: "hub-a")
            _ = await glass.journal.reconcile(into: ledger, hub: "hub-a")
            let rows = try await hub.client.query("SELECT id, state, delivered_by FROM commands", logger: hub.logger)
                .decode((UUID, String, String?).self).all()
            #expect(rows.map { CommandID($0.0.uuidString) } == [id])
            #expect(rows.first?.1 == "delivered" && rows.first?.2 == "hub-a", "break glass sent it: \(rows)")
            let delivered = try await hub.client.query("""
                SELECT count(*) FROM audit_log WHERE command_id = \(UUID(uuidString: id.description)) AND action = 'command.delivered'
                   AND detail LIKE '%break glass%'
                """, logger: hub.logger).decode(Int64.self).all()
            #expect(delivered == [1], "the audit log says once that break glass sent it")
            #expect(await glass.journal.unfinished(bot: "held").isEmpty)
        }
    }

    /// A stop repeated with its Idempotency-Key once the database is back, before this replica's journal is written to
    /// the ledger, is the stop break glass took, not a second one. Before, the ledger took it as new: the bot got a
    /// second stop under another id, and the journal's import then conflicted on the key and wrote nothing.
    @Test(.timeLimit(.minutes(2)))
    func aStopRepeatedWithItsKeyBeforeTheJournalIsImportedIsTheSameStop() async throws {
        try await InProcessHub.run(breakGlass: true) { hub, http in
            let (op, sent) = try await Self.operatorAndBot(hub, http, bot: "keyed", connected: true, idempotencyKey: "stop-keyed-1")
            func stop() async throws -> (HTTPResponse.Status, String?) {
                let answer = try await http.execute(uri: "/api/bots/keyed/emergency-stop", method: .post, headers: op,
                                                    body: ByteBuffer(string: #"{"reason": "runaway"}"#))
                let fields = try? JSONSerialization.jsonObject(with: Data(String(buffer: answer.body).utf8)) as? [String: Any]
                return (answer.status, fields?["id"] as? String)
            }
            hub.health.observed(failure: "test: the database is down")
            let first = try await stop()
            #expect(first.0 == .accepted && first.1 != nil, "taken by break glass")
            let probe = Task { try await hub.health.run() }
            defer { probe.cancel() }
            #expect(try await eventually(.seconds(30)) { hub.health.isUp })
            let again = try await stop()
            #expect(again.0 == .ok && again.1 == first.1, "the same stop: \(again)")
            #expect(try await Self.commands(hub.ledgerClient) == [], "nothing new in the ledger (the journal's import writes the stop)")
            #expect(sent.all.count == 1)
        }
    }

    /// The same stop repeated with its Idempotency-Key through another replica once the database is back, before this
    /// replica's journal is imported, is a command of its own there (that replica has no journal entry of it), and the
    /// bot is sent both. The import still writes what break glass sent, without the key, and the audit log names the
    /// command that repeated it; an operator's resume since then stands (the import does not latch the bot again).
    /// Before, the import conflicted on the key, wrote nothing, and logged that it had.
    @Test(.timeLimit(.minutes(2)))
    func aStopRepeatedThroughAnotherReplicaBeforeTheImportLeavesBothInTheLedger() async throws {
        try await InProcessHub.run(breakGlass: true) { hub, http in
            let (op, _) = try await Self.operatorAndBot(hub, http, bot: "twice", connected: true, idempotencyKey: "stop-twice-1")
            hub.health.observed(failure: "test: the database is down")
            let answer = try await http.execute(uri: "/api/bots/twice/emergency-stop", method: .post, headers: op,
                                                body: ByteBuffer(string: #"{"reason": "runaway"}"#))
            #expect(answer.status == .accepted, "taken by break glass")
            guard let glass = hub.breakGlass, let entry = await glass.journal.unfinished(bot: "twice").first else {
                Issue.record("no break-glass entry"); return
            }
            // Another replica, the database answering there: the same operator, request and key reach the ledger.
            let ledger = CommandLedger(client: hub.client, logger: hub.logger)
            let other = try await ledger.requestStop(bot: "twice", actor: Actor(name: entry.record.issuedBy, kind: .operator, remote: "10.0.0.2"),
                                                     origin: .operator, reason: "runaway", liquidate: false, idempotencyKey: "stop-twice-1")
            guard case .created(let repeated) = other else { Issue.record("the other replica made no stop: \(other)"); return }
            #expect(repeated.id != entry.record.id)
            let operatorActor = Actor(name: entry.record.issuedBy, kind: .operator, remote: "10.0.0.2")
            guard case .created = try await ledger.requestResume(bot: "twice", actor: operatorActor, reason: "checked, carry on") else {
                Issue.record("no resume"); return
            }
            // This replica imports its journal (twice, as after a kill before the file was deleted), then as usual.
            #expect(try await ledger.importBreakGlass(entry, hub: "hub-a") == .writtenBeside(repeated.id.description, sameRequest: true))
            #expect(try await ledger.importBreakGlass(entry, hub: "hub-a") == .alreadyThere)
            _ = await glass.journal.reconcile(into: ledger, hub: "hub-a")
            let rows = try await hub.client.query("""
                SELECT id, state, idempotency_key FROM commands WHERE kind = 'emergency_stop' ORDER BY created_at
                """, logger: hub.logger).decode((UUID, String, String?).self).all()
            #expect(rows.map { CommandID($0.0.uuidString) } == [entry.record.id, repeated.id])
            #expect(rows.first?.1 == "delivered", "break glass sent it")
            #expect(rows.map(\.2) == [nil, "stop-twice-1"], "the key stays with the command the ledger gave it to")
            let latched = try await hub.client.query("SELECT emergency_command_id IS NOT NULL FROM bots WHERE name = 'twice'",
                                                     logger: hub.logger).decode(Bool.self).all()
            #expect(latched == [false], "the operator's resume stands")
            let notes = try await hub.client.query("""
                SELECT action, detail FROM audit_log WHERE command_id = \(UUID(uuidString: entry.record.id.description)) ORDER BY id
                """, logger: hub.logger).decode((String, String?).self).all()
            #expect(notes.map(\.0).sorted() == ["command.delivered", "command.repeated", "emergency_stop.requested"], "\(notes)")
            #expect(notes.contains { $0.0 == "command.repeated" && ($0.1 ?? "").contains(repeated.id.description) })
            #expect(await glass.journal.unfinished(bot: "twice").isEmpty)
        }
    }

    /// Commands of the bot committed while the import waits for the bot's row are seen by it: the same request repeated
    /// through another replica (the stop is written beside it at once), and a resume (the import does not latch the bot
    /// over it). Before, the statement waited for the row inside, with its snapshot from before the wait: it wrote
    /// nothing for the first and said the bot was unknown, and latched the bot over the second.
    @Test(.timeLimit(.minutes(2)))
    func anImportWaitingForTheBotsRowSeesWhatWasCommittedMeanwhile() async throws {
        try await InProcessHub.run(breakGlass: true) { hub, http in
            _ = try await Self.operatorAndBot(hub, http, bot: "raced")
            let botID = try await hub.client.query("SELECT id FROM bots WHERE name = 'raced'", logger: hub.logger).decode(Int32.self).all()[0]
            let ledger = CommandLedger(client: hub.client, logger: hub.logger)
            func entry(key: String?) -> BreakGlassJournal.Entry {
                BreakGlassJournal.Entry(record: .breakGlass(bot: "raced", origin: .operator, issuedBy: "ops", reason: "runaway", hub: "hub-a", at: Date()),
                                        botID: botID, actorKind: "operator", remote: nil, idempotencyKey: key,
                                        actions: CommandFrame.Actions.emergencyStop.rawValue)
            }
            /// Imports `entry` while another transaction holds the bot's row and commits the command `id` (`kind`, `key`).
            func importWhileTheRowIsHeld(_ entry: BreakGlassJournal.Entry, committing id: CommandID, kind: String, key: String?) async throws -> BreakGlassImport {
                try await hub.client.withConnection { lock in
                    try await lock.query("BEGIN", logger: hub.logger)
                    try await lock.query("SELECT 1 FROM bots WHERE id = \(botID) FOR UPDATE", logger: hub.logger)
                    let importing = Task { try await ledger.importBreakGlass(entry, hub: "hub-a") }
                    #expect(try await eventually(.seconds(30)) {
                        try await hub.client.query("""
                            SELECT count(*) FROM pg_stat_activity
                            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'SELECT 1 FROM bots WHERE name%'
                            """, logger: hub.logger).decode(Int64.self).all() == [1]
                    }, "the import waits for the bot's row")
                    let hash = CommandLedger.requestHash(bot: "raced", kind: CommandKind(rawValue: kind)!, reason: "runaway", liquidate: false)
                    try await lock.query("""
                        INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions, idempotency_key, request_hash)
                        VALUES (\(UUID(uuidString: id.description)), \(botID), \(kind), 'operator', 'ops', 'runaway', 1, \(key), \(hash))
                        """, logger: hub.logger)
                    try await lock.query("COMMIT", logger: hub.logger)
                    return try await importing.value
                }
            }
            // The same request with its key, from another replica.
            let keyed = entry(key: "stop-raced-1")
            let other = CommandID.random()
            #expect(try await importWhileTheRowIsHeld(keyed, committing: other, kind: "emergency_stop", key: "stop-raced-1")
                    == .writtenBeside(other.description, sameRequest: true))
            #expect(try await ledger.importBreakGlass(keyed, hub: "hub-a") == .alreadyThere)
            // A resume by an operator on another replica.
            #expect(try await importWhileTheRowIsHeld(entry(key: nil), committing: .random(), kind: "resume", key: nil) == .written)
            let latched = try await hub.client.query("SELECT emergency_command_id IS NOT NULL FROM bots WHERE id = \(botID)",
                                                     logger: hub.logger).decode(Bool.self).all()
            #expect(latched == [false], "the later resume stands")
        }
    }

    /// A break-glass stop whose Idempotency-Key went to another request before the import (here another bot's stop by
    /// the same operator) is written without the key and latches its bot: break glass latched the bot's agent, and no
    /// command of the bot came after it. One whose id the ledger holds for another bot is not written, and its file
    /// stays for an operator instead of blocking the journal (the import would otherwise be tried every second).
    @Test(.timeLimit(.minutes(2)))
    func stopsWhoseKeyOrIdWentElsewhereAreSettled() async throws {
        try await InProcessHub.run(breakGlass: true) { hub, _ in
            let ids = try await hub.client.query("""
                INSERT INTO bots (name, token_hash) VALUES ('first', \(BotToken.hash("s"))), ('second', \(BotToken.hash("s"))) RETURNING id
                """, logger: hub.logger).decode(Int32.self).all()
            let ledger = CommandLedger(client: hub.client, logger: hub.logger)
            guard case .created(let other) = try await ledger.requestStop(bot: "second", actor: Actor(name: "ops", kind: .operator),
                                                                          origin: .operator, reason: "another", liquidate: false,
                                                                          idempotencyKey: "k-1") else {
                Issue.record("no stop of the second bot"); return
            }
            func entry(id: CommandID = .random()) -> BreakGlassJournal.Entry {
                BreakGlassJournal.Entry(record: .breakGlass(bot: "first", origin: .operator, issuedBy: "ops", reason: "runaway", hub: "hub-a",
                                                            at: Date(), id: id),
                                        botID: ids[0], actorKind: "operator", remote: nil, idempotencyKey: "k-1",
                                        actions: CommandFrame.Actions.emergencyStop.rawValue)
            }
            let keyed = entry()
            #expect(try await ledger.importBreakGlass(keyed, hub: "hub-a") == .writtenBeside(other.id.description, sameRequest: false))
            let latch = try await hub.client.query("SELECT emergency_command_id FROM bots WHERE name = 'first'", logger: hub.logger)
                .decode(UUID?.self).all()
            #expect(latch.map { $0.flatMap { CommandID($0.uuidString) } } == [keyed.record.id], "the bot is latched, as its agent is")
            let note = try await hub.client.query("""
                SELECT detail FROM audit_log WHERE command_id = \(UUID(uuidString: keyed.record.id.description)) AND action = 'command.repeated'
                """, logger: hub.logger).decode(String.self).all()
            #expect(note.count == 1 && note[0].contains("went to another request"), "\(note)")

            let taken = entry(id: other.id)
            #expect(try await ledger.importBreakGlass(taken, hub: "hub-a") == .idTaken)
            guard let glass = hub.breakGlass else { Issue.record("no break glass"); return }
            try await glass.journal.add(taken)
            #expect(await glass.journal.reconcile(into: ledger, hub: "hub-a") == 0)
            #expect(await glass.journal.unfinished(bot: "first").isEmpty, "not tried again by this process")
            let files = try FileManager.default.contentsOfDirectory(atPath: await glass.journal.directory)
            #expect(files == ["\(taken.record.id).json"], "left for an operator: \(files)")
        }
    }

    /// A journalled stop of a bot that is no longer in the ledger is not reported as written: its file stays on disk
    /// for an operator, and the rest of the journal goes on. Before, the import wrote nothing and said it had, and the
    /// file was removed.
    @Test(.timeLimit(.minutes(2)))
    func aJournalledStopOfABotNotInTheLedgerStaysOnDisk() async throws {
        try await Self.withOutage(bot: "kept") { o in
            let gone = BreakGlassJournal.Entry(record: .breakGlass(bot: "gone", origin: .operator, issuedBy: "ops", reason: "runaway", hub: "hub-a", at: Date()),
                                               botID: 999, actorKind: "operator", remote: nil, idempotencyKey: nil,
                                               actions: CommandFrame.Actions.emergencyStop.rawValue)
            let kept = BreakGlassJournal.Entry(record: .breakGlass(bot: "kept", origin: .operator, issuedBy: "ops", reason: "runaway", hub: "hub-a", at: Date()),
                                               botID: o.botID, actorKind: "operator", remote: nil, idempotencyKey: nil,
                                               actions: CommandFrame.Actions.emergencyStop.rawValue)
            try await o.glass.journal.add(gone)
            try await o.glass.journal.add(kept)
            let ledger = CommandLedger(client: o.ledger, logger: Self.logger)
            #expect(try await ledger.importBreakGlass(gone, hub: "hub-a") == .botUnknown)
            #expect(await o.glass.journal.reconcile(into: ledger, hub: "hub-a") == 1, "the other entry is written")
            #expect(try await Self.commands(o.ledger) == ["delivered"])
            let files = try FileManager.default.contentsOfDirectory(atPath: await o.glass.journal.directory)
            #expect(files == ["\(gone.record.id).json"], "left for an operator: \(files)")
            #expect(await o.glass.journal.unfinished(bot: "gone").isEmpty, "not tried again by this process")
        }
    }

    /// A rule's automatic stop that is waiting for a database connection when the outage is noticed goes out by
    /// break glass at once, and is not written later. Before, it waited for the pool to fail (the runaway bot trading
    /// on), and then wrote the stop when the connection came free, with nothing sent during the outage.
    @Test(.timeLimit(.minutes(2)))
    func anAutomaticStopWaitingWhenTheDatabaseGoesDownTakesTheBreakGlassPath() async throws {
        try await Self.withOutage(bot: "runaway") { o in
            let sent = await Self.connect(o.connections, "runaway", o.botID)
            let stop = Self.automaticStop(o)
            let outcome = try await Self.downWhileWaiting(o.ledger, o.health) { await stop(bot: "runaway", rule: Self.drawdown, value: 25) }
            guard case .created(let record)? = outcome else {
                Issue.record("no stop was made"); return
            }
            #expect(sent.all.count == 1, "the stop reached the bot while the database was down")
            #expect(record.issuedBy == "drawdown" && record.origin == CommandOrigin.rule.rawValue)
            #expect(await o.glass.journal.unfinished(bot: "runaway").map(\.record.id) == [record.id])
            if case .command(let frame)? = sent.all.first {
                #expect(frame.commandID == record.id && !frame.actions.contains(.liquidate))
            } else {
                Issue.record("the bot got no command frame")
            }
            // The connection is free again: the ledger gets the stop only from the journal (reconcile), not twice.
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.commands(o.ledger) == [])
        }
    }

    /// An automatic stop for a bot not connected to this replica cannot go out by break glass: when its ledger call
    /// is given up on, it is written to the ledger once the database answers, once, for the bot's replica to send.
    /// Before, it was only logged as not recorded.
    @Test(.timeLimit(.minutes(2)))
    func anAutomaticStopBreakGlassCannotSendIsWrittenOnceTheDatabaseAnswers() async throws {
        try await Self.withOutage(bot: "elsewhere") { o in
            let stop = Self.automaticStop(o)
            let outcome = try await Self.downWhileWaiting(o.ledger, o.health) { await stop(bot: "elsewhere", rule: Self.drawdown, value: 25) }
            #expect(outcome.map { "\($0)" } == nil, "nothing sent or written yet")
            #expect(await o.glass.journal.unfinished(bot: "elsewhere").isEmpty)
            try await Task.sleep(for: .seconds(1))
            #expect(try await Self.commands(o.ledger) == [], "nothing is written while the database is down")
            // The database answers again, as the health probe sees: the stop is written, once.
            let probe = Task { try await o.health.run() }
            defer { probe.cancel() }
            #expect(try await eventually(.seconds(30)) { try await Self.commands(o.ledger) == ["pending"] })
            try await Task.sleep(for: .seconds(1))
            #expect(try await Self.commands(o.ledger) == ["pending"])
            let issuer = try await o.ledger.inner.query("SELECT issued_by FROM commands", logger: Self.logger).decode(String.self).all()
            #expect(issuer == ["drawdown"])
        }
    }

    /// A rule's stop of `elsewhere` (not connected here) while the database is down: left waiting for it, in the
    /// `WaitingStops` returned, which logs to the `RecordingLog` returned.
    static func stopLeftWaiting(_ o: Outage, grace: Duration) async -> (WaitingStops, RecordingLog) {
        let log = RecordingLog()
        let waiting = WaitingStops(logger: Logger(label: "test") { _ in log }, grace: grace)
        let stop = automaticStop(o, waiting: waiting)
        o.health.observed(failure: "test: the database is down")
        let outcome = await stop(bot: "elsewhere", rule: drawdown, value: 25)
        #expect(outcome.map { "\($0)" } == nil, "not connected here: nothing sent or written yet")
        #expect(waiting.bots == ["elsewhere"])
        return (waiting, log)
    }

    /// An automatic stop still waiting for the database when the hub stops is cancelled by the hub's graceful shutdown
    /// (after a short grace) and named in the log as not recorded, so that an operator stops the bot by hand.
    /// Before, it was dropped without a word when the process ended.
    @Test(.timeLimit(.minutes(2)))
    func anAutomaticStopStillWaitingWhenTheHubStopsIsNamedAndNotWrittenLater() async throws {
        try await Self.withOutage(bot: "elsewhere") { o in
            let (waiting, log) = await Self.stopLeftWaiting(o, grace: .milliseconds(300))
            let group = ServiceGroup(services: [WaitingStopsService(stops: waiting)], logger: Self.logger)
            let running = Task { try await group.run() }
            await group.triggerGracefulShutdown()
            try await running.value
            #expect(waiting.bots.isEmpty)
            #expect(log.all.contains { $0.level == .critical && $0.message.contains("elsewhere") && $0.message.contains("not recorded by the time the hub stopped") },
                    "the operator reads which bot to stop by hand")
            // The database answers again: the abandoned stop is not written by a hub on its way out.
            let probe = Task { try await o.health.run() }
            defer { probe.cancel() }
            #expect(try await eventually(.seconds(30)) { o.health.isUp })
            try await Task.sleep(for: .seconds(3))   // thirty retry intervals
            #expect(try await Self.commands(o.ledger) == [])
        }
    }

    /// A hub asked to stop just as the database answers again lets a waiting automatic stop finish: it is written, and
    /// not named as lost.
    @Test(.timeLimit(.minutes(2)))
    func anAutomaticStopWaitingWhenTheHubStopsIsWrittenIfTheDatabaseAnswersInTime() async throws {
        try await Self.withOutage(bot: "elsewhere") { o in
            let (waiting, log) = await Self.stopLeftWaiting(o, grace: .seconds(30))
            let probe = Task { try await o.health.run() }
            defer { probe.cancel() }
            #expect(await waiting.abandonAll() == [], "written within the grace")
            let commands = try await Self.commands(o.ledger)
            #expect(commands == ["pending"])
            #expect(!log.all.contains { $0.level == .critical }, "\(log.all.map(\.message))")
        }
    }

    /// A client whose every statement loses its connection, as to a server that has just gone.
    struct LostConnections: PostgresQuerying {
        func query(_ query: PostgresQuery, logger: Logger?, file: String, line: Int) async throws -> PostgresRowSequence {
            throw StatementAbandoned(reason: .connectionClosed, after: .seconds(2))
        }
        func withLeasedConnection<Result>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
            throw StatementAbandoned(reason: .connectionClosed, after: .seconds(2))
        }
    }

    /// A rule's stop whose own statement loses its connection before the health probe notices tells the health at
    /// once and goes out by break glass. Before, it was only logged as not recorded, and the runaway bot traded on.
    @Test(.timeLimit(.minutes(2)))
    func anAutomaticStopWhoseStatementLosesItsConnectionTakesTheBreakGlassPath() async throws {
        try await Self.withOutage(bot: "lost") { o in
            let sent = await Self.connect(o.connections, "lost", o.botID)
            let stop = Self.automaticStop(o, client: LostConnections())
            guard case .created(let record)? = await stop(bot: "lost", rule: Self.drawdown, value: 25) else {
                Issue.record("no stop was made"); return
            }
            #expect(!o.health.isUp, "the health was told")
            #expect(await o.glass.journal.unfinished(bot: "lost").map(\.record.id) == [record.id])
            #expect(sent.all.count == 1, "the bot got the stop")
        }
    }

    /// An automatic stop waiting for the database to answer is not written if an operator stopped and resumed the bot
    /// in the meantime (through another replica): the later decision stands.
    @Test(.timeLimit(.minutes(2)))
    func anAutomaticStopWaitingForTheDatabaseYieldsToAnOperatorsLaterResume() async throws {
        try await Self.withOutage(bot: "resumed") { o in
            let stop = Self.automaticStop(o)
            let outcome = try await Self.downWhileWaiting(o.ledger, o.health) { await stop(bot: "resumed", rule: Self.drawdown, value: 25) }
            #expect(outcome.map { "\($0)" } == nil)
            let operatorLedger = CommandLedger(client: o.ledger.inner, logger: Self.logger)
            let op = Actor(name: "ci-operator", kind: .operator)
            _ = try await operatorLedger.requestStop(bot: "resumed", actor: op, origin: .operator, reason: "looking", liquidate: false)
            _ = try await operatorLedger.requestResume(bot: "resumed", actor: op, reason: "all good")
            let probe = Task { try await o.health.run() }
            defer { probe.cancel() }
            #expect(try await eventually(.seconds(30)) { o.health.isUp })
            try await Task.sleep(for: .seconds(2))
            let kinds = try await o.ledger.inner.query("SELECT kind FROM commands ORDER BY created_at", logger: Self.logger)
                .decode(String.self).all()
            #expect(kinds == ["emergency_stop", "resume"], "the operator's stop and resume, and no later stop")
        }
    }

    /// The commands taken for a connecting bot, when that ledger call is given up on, stay pending for the
    /// dispatcher to send. Before, the call went on once a connection came free and marked them delivered, though
    /// nothing had been sent: the stop waited for the bot's next reconnect.
    @Test(.timeLimit(.minutes(2)))
    func commandsForAConnectingBotGivenUpOnStayPending() async throws {
        try await Self.withOutage(bot: "late-take") { o in
            let ledger = CommandLedger(client: o.ledger, logger: Self.logger)
            let outcome = try await ledger.requestStop(bot: "late-take", actor: Actor(name: "ci-operator", kind: .operator),
                                                       origin: .operator, reason: "runaway", liquidate: false)
            guard case .created = outcome else { Issue.record("no stop: \(outcome)"); return }
            let channel = LedgerCommandChannel(ledger: ledger, alerts: EmergencyAlerts(store: nil, sink: nil, logger: Self.logger),
                                               hubID: "hub-a", frameTTL: .seconds(60), breakGlass: o.glass)
            let session = BotSession(botID: o.botID, botName: "late-take", connectionID: UUID(), epoch: 1, storedSequence: 0)
            let result = try await Self.downWhileWaiting(o.ledger, o.health) { () async -> Result<[CommandFrame], any Error> in
                do { return .success(try await channel.commandsOnConnect(session)) } catch { return .failure(error) }
            }
            guard case .failure(let error) = result else { Issue.record("commands were taken"); return }
            #expect(error is DatabaseUnavailable, "\(error)")
            // The connection is free again: nothing comes.
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.commands(o.ledger) == ["pending"])
        }
    }
}
