import FleetwatchAgent
import FleetwatchProtocol
import Synchronization
import Testing

@Suite struct EmergencyTests {
    static func command(_ id: UInt8, bot: String = "bot-1", actions: CommandFrame.Actions = [.stopTrading, .cancelOrders, .liquidate, .latchEmergency],
                        expires: UInt64 = 2_000) -> CommandFrame {
        CommandFrame(commandID: Array(repeating: id, count: 16), botID: bot, issuedAtMs: 1_000, expiresAtMs: expires,
                     actions: actions, reason: "test")
    }

    @Test func executesOnceInOrderAndHonoursLiquidationAndBinding() {
        var gate = CommandGate(botID: "bot-1")
        #expect(gate.decide(Self.command(1), nowMs: 1_500, liquidationEnabled: false)
            == .execute([.stopTrading, .cancelOrders, .latchEmergency]))
        #expect(gate.decide(Self.command(1), nowMs: 1_600, liquidationEnabled: false) == .alreadyHandled)
        #expect(gate.decide(Self.command(2), nowMs: 1_500, liquidationEnabled: true)
            == .execute([.stopTrading, .cancelOrders, .liquidate, .latchEmergency]))
        guard case .refuse = gate.decide(Self.command(3, bot: "bot-2"), nowMs: 1_500, liquidationEnabled: true) else {
            Issue.record("a command for another bot was accepted"); return
        }
        guard case .refuse = gate.decide(Self.command(4), nowMs: 2_001, liquidationEnabled: true) else {
            Issue.record("an expired command was accepted"); return
        }
        // Ids survive a restart when the agent hands them back.
        var restarted = CommandGate(botID: "bot-1", handled: gate.handled)
        #expect(restarted.decide(Self.command(2), nowMs: 1_500, liquidationEnabled: true) == .alreadyHandled)
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
