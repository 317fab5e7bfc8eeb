@testable import FleetwatchAgent
import Foundation
import FleetwatchProtocol
import Synchronization
import Testing

@Suite struct EmergencyTests {
    static func command(_ id: UInt8, bot: String = "bot-1", actions: CommandFrame.Actions = [.stopTrading, .cancelOrders, .liquidate, .latchEmergency],
                        expires: UInt64 = 2_000) -> CommandFrame {
        CommandFrame(commandID: CommandID(bytes: Array(repeating: id, count: 16))!, botID: bot, issuedAtMs: 1_000, expiresAtMs: expires,
                     actions: actions, reason: "test")
    }

    static func result(_ id: UInt8, step: CommandFrame.Actions?, _ status: CommandResultFrame.Status) -> CommandResultFrame {
        CommandResultFrame(commandID: CommandID(bytes: Array(repeating: id, count: 16))!, step: step?.rawValue ?? 0, status: status, atMs: 1_500, detail: "")
    }

    @Test func executesOnceInOrderAndHonoursLiquidationAndBinding() {
        var log = CommandLog(botID: "bot-1")
        #expect(log.decide(Self.command(1), nowMs: 1_500, liquidationEnabled: false)
            == .execute(steps: [.stopTrading, .cancelOrders, .latchEmergency], liquidationSkipped: true, reportReceived: true))
        // Delivered again while running: only what is known so far is reported again.
        log.record(Self.result(1, step: nil, .received))
        #expect(log.decide(Self.command(1), nowMs: 1_600, liquidationEnabled: false) == .resend([Self.result(1, step: nil, .received)]))
        #expect(log.decide(Self.command(2), nowMs: 1_500, liquidationEnabled: true)
            == .execute(steps: [.stopTrading, .cancelOrders, .liquidate, .latchEmergency], liquidationSkipped: false, reportReceived: true))
        guard case .refuse = log.decide(Self.command(3, bot: "bot-2"), nowMs: 1_500, liquidationEnabled: true) else {
            Issue.record("a command for another bot was accepted"); return
        }
        guard case .refuse = log.decide(Self.command(4), nowMs: 2_001, liquidationEnabled: true) else {
            Issue.record("an expired command was accepted"); return
        }
        // A refusal is not remembered: a fresh, valid delivery of the same id still runs.
        guard case .execute = log.decide(Self.command(4, expires: 9_000), nowMs: 2_001, liquidationEnabled: true) else {
            Issue.record("a valid redelivery after an expired one did not run"); return
        }
    }

    @Test func aRestartedAgentRunsOnlyWhatItHadNotFinishedAndRelatches() {
        // Command 1 finished before the restart; command 2 was interrupted after stopping trading.
        let journal = [
            Self.result(1, step: nil, .received), Self.result(1, step: .stopTrading, .succeeded),
            Self.result(1, step: .latchEmergency, .succeeded), Self.result(1, step: nil, .completed),
            Self.result(2, step: nil, .received), Self.result(2, step: .stopTrading, .succeeded),
        ]
        var log = CommandLog(botID: "bot-1", journal: journal)
        // The hub sends the latched command 1 on reconnect: enter emergency mode again, report nothing new.
        #expect(log.decide(Self.command(1), nowMs: 1_500, liquidationEnabled: false) == .relatch(Array(journal[0..<4])))
        // Delivered once more in this run: just the results.
        #expect(log.decide(Self.command(1), nowMs: 1_500, liquidationEnabled: false) == .resend(Array(journal[0..<4])))
        // Command 2 runs the steps that had not succeeded, without a second "received".
        #expect(log.decide(Self.command(2), nowMs: 1_500, liquidationEnabled: false)
            == .execute(steps: [.cancelOrders, .latchEmergency], liquidationSkipped: true, reportReceived: false))
    }

    /// A corrupt journal (invalid UTF-8, a line that is not hex, a torn last write) loses only its bad lines.
    @Test func aCorruptJournalLosesOnlyItsBadLines() {
        let good = [Self.result(7, step: nil, .received), Self.result(7, step: .stopTrading, .succeeded)]
        let lines = good.map { r in Frame.commandResult(r).encoded().readableBytesView.map { String(format: "%02x", $0) }.joined() }
        var data = Data((lines[0] + "\n").utf8)
        data.append(contentsOf: [0xFF, 0xFE, 0x0A])
        data.append(contentsOf: Data("07zz\n\(lines[1])\n0700".utf8))
        #expect(CommandJournal.parse(data) == good)
    }

    @Test func theJournalSurvivesARestart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let written = [Self.result(7, step: nil, .received), Self.result(7, step: .stopTrading, .succeeded)]
        var journal = try CommandJournal(directory: dir)
        written.forEach { journal.append($0) }
        #expect(try CommandJournal(directory: dir).load() == written)
    }

    final class Bot: EmergencyHandler {
        let log = Mutex<[String]>([])
        let liquidationEnabled = false
        func stopTrading() async throws -> String { log.withLock { $0.append("stop") }; return "trading stopped" }
        func cancelOpenOrders() async throws -> String {
            log.withLock { $0.append("cancel") }
            struct ExchangeDown: Error {}
            throw ExchangeDown()
        }
        func liquidatePositions() async throws -> String { log.withLock { $0.append("liquidate") }; return "sold" }
        func setEmergencyMode() async throws -> String { log.withLock { $0.append("latch") }; return "latched" }
    }

    @Test func runnerReportsEveryStep() async {
        let bot = Bot()
        let reports = Mutex<[String]>([])
        await EmergencyRunner.run(Self.command(9), steps: [.stopTrading, .cancelOrders, .latchEmergency], handler: bot,
                                  liquidationSkipped: true, clock: { 5 }) { r in
            reports.withLock { $0.append("\(r.step)/\(r.status)") }
        }
        #expect(bot.log.withLock { $0 } == ["stop", "cancel", "latch"])
        #expect(reports.withLock { $0 } == ["0/received", "1/succeeded", "2/failed", "8/succeeded", "4/skipped", "0/failed"])
    }
}
