@testable import FleetwatchAgent
import Foundation
import Synchronization
import Testing

// docs/agent.md, "Trading metrics": the reference's add_monitoring_to_bot example in Swift. The block between
// the DOC-BEGIN and DOC-END markers is the documented code, verbatim (a test below checks that the doc still
// matches it); the rest is a stand-in for the user's bot.

/// A stand-in for the user's bot: it reports its events through hooks and obeys the stop.
final class KrakenTradingBot: @unchecked Sendable {
    struct Fill { let ok: Bool; let pnl: Double; let elapsed: Duration }
    private let lock = Mutex(())
    var onTrade: (@Sendable (Fill) -> Void)?
    var onAPICall: (@Sendable (Bool) -> Void)?
    var onNonce: (@Sendable () -> Void)?
    var onWebSocket: (@Sendable (String, Double?) -> Void)?
    var onBalanceCheck: (@Sendable (Duration, Bool) -> Void)?
    private(set) var halted = false
    private(set) var emergency = false
    private(set) var openOrders = 3

    func halt() async { lock.withLock { _ in halted = true } }
    func cancelAllOrders() async throws -> Int { lock.withLock { _ in defer { openOrders = 0 }; return openOrders } }
    func enterEmergencyMode() async { lock.withLock { _ in emergency = true } }
}

// DOC-BEGIN
/// The reference's `add_monitoring_to_bot(bot)`: an agent and the trading helper for one bot.
func addMonitoringToBot(_ bot: KrakenTradingBot, configuration: AgentConfiguration) throws -> BotMonitoring {
    let agent = try MonitorAgent(configuration: configuration)
    // daily_pnl starts again at midnight in the desk's time zone.
    let trading = TradingMetrics(agent: agent, timeZone: TimeZone(identifier: "America/New_York")!)
    return BotMonitoring(agent: agent, trading: trading)
}

struct BotMonitoring {
    let agent: MonitorAgent
    let trading: TradingMetrics

    /// The reference's `setup_integration()`: the bot's events feed the reference metrics, and the hub
    /// can stop the bot.
    func setupIntegration(_ bot: KrakenTradingBot) async {
        let trading = self.trading
        bot.onTrade = { fill in trading.recordTrade(success: fill.ok, pnl: fill.pnl, duration: fill.elapsed) }
        bot.onAPICall = { failed in trading.recordAPICall(error: failed) }
        bot.onNonce = { trading.recordNonce() }
        bot.onWebSocket = { status, latencyMs in
            trading.setWebSocket(status: status, latencyMs: latencyMs)
            if status == "reconnecting" { trading.recordReconnect() }
        }
        bot.onBalanceCheck = { elapsed, healthy in
            trading.recordBalanceCheck(elapsed)
            trading.setBalanceManager(health: healthy ? "healthy" : "degraded")
        }
        await agent.setEmergencyHandler(KrakenEmergency(bot: bot))
    }
}

/// What an emergency stop does in this bot.
struct KrakenEmergency: EmergencyHandler {
    let bot: KrakenTradingBot
    func stopTrading() async throws -> String { await bot.halt(); return "trading loop halted" }
    func cancelOpenOrders() async throws -> String { "cancelled \(try await bot.cancelAllOrders()) open orders" }
    func setEmergencyMode() async throws -> String { await bot.enterEmergencyMode(); return "emergency mode latched" }
}
// DOC-END

@Suite struct AgentDocExampleTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The example's hooks produce the metrics the reference rules read, and its handler stops the bot.
    @Test func addMonitoringToBotFeedsTheReferenceMetricsAndStopsTheBot() async throws {
        var config = AgentConfiguration(hubURL: "ws://127.0.0.1:1/agent/v1", botID: "kraken-btc-01", token: "t")
        config.processCollector = false
        let bot = KrakenTradingBot()
        let monitoring = try addMonitoringToBot(bot, configuration: config)
        await monitoring.setupIntegration(bot)

        bot.onTrade?(.init(ok: true, pnl: 12, elapsed: .milliseconds(80)))
        bot.onTrade?(.init(ok: false, pnl: -30, elapsed: .milliseconds(120)))
        for i in 0..<4 { bot.onAPICall?(i == 0) }
        bot.onNonce?()
        bot.onWebSocket?("reconnecting", nil)
        bot.onWebSocket?("connected", 35)
        bot.onBalanceCheck?(.milliseconds(900), true)

        let series = monitoring.agent.registry.snapshot(nowMs: 1000).series
        let values = Dictionary(uniqueKeysWithValues: series.map { ($0.name, $0.values) })
        let states = Dictionary(uniqueKeysWithValues: series.compactMap { s in s.states.last.map { (s.name, $0) } })
        #expect(values["trades_executed"] == [2] && values["success_rate"] == [50])
        #expect(values["total_pnl"] == [-18] && values["daily_pnl"] == [-18])
        #expect(values["api_calls"] == [4] && values["api_errors"] == [1] && values["nonces_generated"] == [1])
        #expect(values["websocket_reconnects"] == [1] && values["websocket_latency_ms"] == [35])
        #expect(values["balance_check_time"] == [900] && values["trade_execution_time"] == [80, 120])
        #expect(states["websocket_status"] == "connected" && states["balance_manager_health"] == "healthy")

        await monitoring.agent.declareEmergency(reason: "doc example")
        #expect(bot.halted && bot.emergency && bot.openOrders == 0)
    }

    /// docs/agent.md shows exactly the code above.
    @Test func theDocumentShowsThisCode() throws {
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        let start = try #require(source.range(of: "// DOC-BEGIN\n"))
        let end = try #require(source.range(of: "// DOC-END\n"))
        let code = String(source[start.upperBound..<end.lowerBound])
        let doc = try String(contentsOfFile: "\(Self.repo)/docs/agent.md", encoding: .utf8)
        #expect(doc.contains("```swift\n" + code + "```"), "docs/agent.md no longer shows the tested add_monitoring_to_bot code")
    }
}
