import FleetwatchControl
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import Testing

/// The break-glass journal on disk: a command survives the replica's death, results move its state, a result
/// seen twice counts once, and the files are private.
@Suite struct BreakGlassJournalTests {
    static func directory() -> String { NSTemporaryDirectory() + "fw-journal-\(UUID().uuidString)/hub-a" }

    static func entry(bot: String = "bot-1", key: String? = "k1", at: Date = Date()) -> BreakGlassJournal.Entry {
        .init(record: .breakGlass(bot: bot, origin: .operator, issuedBy: "ops", reason: "runaway", hub: "hub-a", at: at),
              botID: 7, actorKind: "operator", remote: "10.0.0.9", idempotencyKey: key, actions: CommandFrame.Actions.emergencyStop.rawValue)
    }

    static func result(_ id: CommandID, step: UInt8, _ status: CommandResultFrame.Status) -> CommandResultFrame {
        CommandResultFrame(commandID: id, step: step, status: status, atMs: UInt64(Date().timeIntervalSince1970 * 1000), detail: "ok")
    }

    @Test func survivesARestartAndFollowsTheResults() async throws {
        let dir = Self.directory()
        let logger = Logger(label: "t")
        let journal = try BreakGlassJournal(directory: dir, logger: logger)
        let e = Self.entry()
        try await journal.add(e)
        let id = e.record.id
        #expect(try await journal.record(Self.result(id, step: 0, .received)))
        #expect(try await journal.record(Self.result(id, step: 1, .succeeded)))
        #expect(try await journal.record(Self.result(id, step: 1, .succeeded)))          // again: no second step
        #expect(try await !journal.record(Self.result(CommandID.random(), step: 1, .succeeded)))      // not journalled here
        #expect(await journal.unfinished(bot: "bot-1").count == 1)

        // A new process finds it, state and steps included.
        let reopened = try BreakGlassJournal(directory: dir, logger: logger)
        let found = try #require(await reopened.entry(id: id))
        #expect(found.record.state == "acknowledged")
        #expect(found.record.steps.map(\.step) == ["command", "stop_trading"])
        #expect(await reopened.entry(issuedBy: "ops", idempotencyKey: "k1")?.record.id == id)
        #expect(try await reopened.record(Self.result(id, step: 0, .completed)))
        #expect(await reopened.entry(id: id)?.record.state == "completed")
        #expect(await reopened.unfinished(bot: "bot-1").isEmpty)

        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files == ["\(id).json"])
        let mode = try FileManager.default.attributesOfItem(atPath: "\(dir)/\(files[0])")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    /// The journal's record times come from its clock: each state is stamped when the result arrived here.
    @Test func theJournalStampsResultsWithItsClock() async throws {
        let clock = ManualClock()
        let journal = try BreakGlassJournal(directory: Self.directory(), logger: Logger(label: "t"), clock: clock)
        let e = Self.entry(at: clock.date)     // sent at once: delivered when journalled
        let delivered = clock.date
        try await journal.add(e)
        clock.advance(ms: 1_500)
        #expect(try await journal.record(Self.result(e.record.id, step: 0, .received)))
        let acknowledged = clock.date
        clock.advance(ms: 2_000)
        #expect(try await journal.record(Self.result(e.record.id, step: 1, .succeeded)))
        clock.advance(ms: 60_000)
        #expect(try await journal.record(Self.result(e.record.id, step: 0, .completed)))
        let record = try #require(await journal.entry(id: e.record.id)).record
        #expect(record.deliveredAt == delivered)
        #expect(record.acknowledgedAt == acknowledged)
        #expect(record.completedAt == clock.date)
        #expect(record.steps.last?.recordedAt == clock.date)
    }

    @Test func aDamagedFileIsLeftForTheOperator() async throws {
        let dir = Self.directory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "{not json".write(toFile: "\(dir)/broken.json", atomically: true, encoding: .utf8)
        let journal = try BreakGlassJournal(directory: dir, logger: Logger(label: "t"))
        #expect(await journal.pending.isEmpty)
        #expect(FileManager.default.fileExists(atPath: "\(dir)/broken.json"))
    }
}
