import FleetwatchControl
import FleetwatchProtocol
import Foundation
import Logging

/// Emergency stops taken while PostgreSQL was unreachable ("break glass"), kept on the replica's local disk until
/// the ledger has them.
///
/// One file per command under `directory` (0700; files 0600, written atomically and synced before the bot is
/// sent anything): the command as the API shows it, who asked, the idempotency key, and every step result the
/// bot reported. When the database answers again, `reconcile` writes each command, its audit rows and its
/// steps to the ledger exactly once (the command id is the key) and deletes the file; a replica killed in
/// between finds the file again at start and reconciles it then.
public actor BreakGlassJournal {
    /// One journalled command.
    public struct Entry: Codable, Sendable, Equatable {
        public struct Result: Codable, Sendable, Equatable {
            public var step: UInt8
            public var status: UInt8
            public var atMs: UInt64
            public var detail: String
        }
        public var record: CommandRecord
        public var botID: Int32
        public var actorKind: String
        public var remote: String?
        public var idempotencyKey: String?
        public var actions: UInt8
        public var results: [Result] = []

        public init(record: CommandRecord, botID: Int32, actorKind: String, remote: String?, idempotencyKey: String?, actions: UInt8) {
            self.record = record
            self.botID = botID
            self.actorKind = actorKind
            self.remote = remote
            self.idempotencyKey = idempotencyKey
            self.actions = actions
        }
    }

    let directory: String
    let logger: Logger
    /// The wall clock of the results' record times.
    let clock: any MillisecondClock
    private var entries: [CommandID: Entry] = [:]

    /// Opens (creating) the journal in `directory` and reads what a previous run left there.
    public init(directory: String, logger: Logger, clock: any MillisecondClock = SystemClock.wall) throws {
        self.directory = directory
        self.logger = logger
        self.clock = clock
        try SecretFile.privateDirectory(directory)
        var found: [CommandID: Entry] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".json") {
            let path = "\(directory)/\(name)"
            do {
                let entry = try JSONDecoder.journal.decode(Entry.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
                found[entry.record.id] = entry
            } catch {
                logger.error("break-glass journal: cannot read \(path) (left in place for an operator): \(error)")
            }
        }
        entries = found
        if !found.isEmpty { logger.warning("break-glass journal: \(found.count) emergency stop(s) from an outage wait for the ledger") }
    }

    /// Commands not yet in the ledger.
    public var pending: [Entry] { entries.values.sorted { $0.record.createdAt < $1.record.createdAt } }

    public func entry(id: CommandID) -> Entry? { entries[id] }

    /// The command `issuedBy` made with `idempotencyKey`, if journalled here.
    public func entry(issuedBy: String, idempotencyKey: String) -> Entry? {
        entries.values.first { $0.record.issuedBy == issuedBy && $0.idempotencyKey == idempotencyKey }
    }

    /// The unfinished commands for `bot` (sent again when it reconnects during the outage).
    public func unfinished(bot: String) -> [Entry] {
        entries.values.filter { $0.record.bot == bot && !$0.record.isFinal }.sorted { $0.record.createdAt < $1.record.createdAt }
    }

    /// Writes a new command to disk (synced) before anything is sent to the bot.
    public func add(_ entry: Entry) throws {
        try write(entry)
        entries[entry.record.id] = entry
    }

    /// Records a step result for a journalled command; false if the command is not in the journal (the ledger
    /// has it). A result seen before changes nothing.
    public func record(_ result: CommandResultFrame) throws -> Bool {
        let id = result.commandID
        guard var entry = entries[id] else { return false }
        let r = Entry.Result(step: result.step, status: result.status.rawValue, atMs: result.atMs, detail: result.detail)
        guard !entry.results.contains(where: { $0.step == r.step && $0.status == r.status }) else { return true }
        entry.results.append(r)
        entry.record = Self.apply(r, to: entry.record, at: clock.date)
        try write(entry)
        entries[id] = entry
        return true
    }

    /// Writes every journalled command to the ledger, then forgets it. Results that arrive while a command is
    /// being written are written too before its file is removed (nothing is lost in between).
    public func reconcile(into ledger: CommandLedger, hub: String) async -> Int {
        var done = 0
        for id in entries.keys.sorted() {
            var written = 0
            do {
                guard let first = entries[id] else { continue }
                switch try await ledger.importBreakGlass(first, hub: hub) {
                case .botUnknown, .idTaken:
                    // Nothing to attach it to: kept on disk for an operator, not tried again by this process.
                    entries[id] = nil
                    logger.error("break-glass journal: emergency stop \(id) of \(first.record.bot) not written to the ledger (see the error before); its entry stays in \(path(id)) for an operator")
                    continue
                case .written, .writtenBeside, .alreadyThere:
                    break
                }
                while let entry = entries[id], written < entry.results.count {
                    for r in entry.results[written...] {
                        guard let status = CommandResultFrame.Status(rawValue: r.status) else { continue }
                        try await ledger.record(CommandResultFrame(commandID: id, step: r.step, status: status, atMs: r.atMs,
                                                                   detail: r.detail), botID: entry.botID, connectionID: nil)
                        written += 1
                    }
                }
                // No suspension point between the last check and the removal: a result arriving now goes to the ledger.
                entries[id] = nil
                try? FileManager.default.removeItem(atPath: path(id))
                done += 1
                logger.notice("break-glass journal: emergency stop \(id) of \(first.record.bot) is in the ledger now (\(written) step result(s))")
            } catch {
                logger.error("break-glass journal: cannot write command \(id) to the ledger yet (kept on disk): \(String(reflecting: error))")
                return done
            }
        }
        return done
    }

    /// The command as the API shows it after `result`.
    static func apply(_ result: Entry.Result, to record: CommandRecord, at now: Date) -> CommandRecord {
        var out = record
        let status = CommandResultFrame.Status(rawValue: result.status)
        if let step = CommandFrame.Actions.stepName(result.step) {
            out.steps.append(.init(step: step, status: status?.name ?? "unknown", detail: result.detail,
                                   at: Date(timeIntervalSince1970: Double(result.atMs) / 1000), recordedAt: now))
        }
        // An unknown status counts as an answer (acknowledged), as in the ledger.
        var life = CommandLifecycle(state: CommandState(rawValue: out.state) ?? .pending)
        for effect in life.apply(status ?? .received, step: result.step) {
            switch effect {
            case .firstDelivery: out.deliveredAt = out.deliveredAt ?? now
            case .acknowledged: out.acknowledgedAt = out.acknowledgedAt ?? now
            case .completed: out.completedAt = now; out.detail = result.detail
            case .failed: out.failedAt = now; out.detail = result.detail
            }
        }
        out.state = life.state.rawValue
        return out
    }

    private func path(_ id: CommandID) -> String { "\(directory)/\(id).json" }

    private func write(_ entry: Entry) throws {
        let data = try JSONEncoder.journal.encode(entry)
        try SecretFile.write(String(decoding: data, as: UTF8.self), to: path(entry.record.id))
    }
}

extension JSONEncoder {
    static var journal: JSONEncoder {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .millisecondsSince1970
        e.outputFormatting = [.sortedKeys]
        return e
    }
}

extension JSONDecoder {
    static var journal: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .millisecondsSince1970
        return d
    }
}
