@testable import FleetwatchAgent
import Foundation
import Synchronization
import Testing

/// The trading helper keeps the reference system's metrics under the names its rules read.
@Suite struct TradingMetricsTests {
    final class Clock: Sendable {
        let now = Mutex(Date(timeIntervalSince1970: 1_764_000_000))   // 2025-11-24 16:00 UTC
        func advance(_ seconds: Double) { now.withLock { $0 = $0.addingTimeInterval(seconds) } }
        var read: @Sendable () -> Date { { self.now.withLock { $0 } } }
    }

    static func values(_ agent: MonitorAgent) -> [String: [Double]] {
        Dictionary(uniqueKeysWithValues: agent.registry.snapshot(nowMs: 1000).series.map { ($0.name, $0.values.array) })
    }

    @Test func tradesAPICallsNoncesAndReconnects() throws {
        let agent = try RecordingTests.agent()
        let clock = Clock()
        let trading = TradingMetrics(agent: agent, now: clock.read)
        trading.recordTrade(success: true, pnl: 10, duration: .milliseconds(120))
        trading.recordTrade(success: true, pnl: -2.5)
        trading.recordTrade(success: false, pnl: -1.5)
        trading.recordTrade(success: true, pnl: .nan)
        for i in 0..<10 { trading.recordAPICall(error: i == 3) }
        trading.recordNonce()
        trading.recordNonce(failed: true)
        trading.recordReconnect()
        trading.setWebSocket(status: "connected", latencyMs: 42)
        trading.setBalanceManager(health: "healthy")
        trading.setCriticalComponent(status: "ok")
        let v = Self.values(agent)
        #expect(v["trades_executed"] == [4] && v["trades_failed"] == [1])
        #expect(v["success_rate"] == [75] && v["total_pnl"] == [6] && v["daily_pnl"] == [6])
        #expect(v["trade_execution_time"] == [120])
        #expect(v["api_calls"] == [10] && v["api_errors"] == [1])
        #expect(v["nonces_generated"] == [2] && v["nonce_failures"] == [1] && v["websocket_reconnects"] == [1])
        #expect(v["websocket_latency_ms"] == [42])
        let states = Dictionary(uniqueKeysWithValues: agent.registry.snapshot(nowMs: 100_000).series.compactMap { s in s.states.first.map { (s.name, $0) } })
        #expect(states["websocket_status"] == "connected" && states["balance_manager_health"] == "healthy" && states["critical_component_status"] == "ok")
    }

    /// Without errors the error counter still exists (at 0), so the error-rate rule has both of its counters.
    @Test func apiErrorsExistFromTheFirstCall() throws {
        let agent = try RecordingTests.agent()
        let trading = TradingMetrics(agent: agent)
        trading.recordAPICall()
        #expect(Self.values(agent)["api_errors"] == [0] && Self.values(agent)["api_calls"] == [1])
    }

    /// daily_pnl starts again at the time zone's midnight, even on a day without trades; total_pnl does not.
    @Test func dailyPnLResetsAtTheTimeZonesMidnight() async throws {
        let agent = try RecordingTests.agent()
        let clock = Clock()   // 16:00 UTC = 11:00 in New York
        let trading = TradingMetrics(agent: agent, timeZone: TimeZone(identifier: "America/New_York")!, now: clock.read)
        trading.restore(trades: 10, failed: 1, totalPnl: 100, dailyPnl: 5)
        trading.recordTrade(success: true, pnl: -20)
        #expect(trading.snapshot.dailyPnl == -15 && trading.snapshot.totalPnl == 80)
        clock.advance(10 * 3600)   // 02:00 UTC next day = 21:00 in New York: still the same day there
        await agent.flush()
        #expect(trading.snapshot.dailyPnl == -15)
        clock.advance(4 * 3600)    // 01:00 in New York: a new day, no trade yet
        await agent.flush()
        #expect(trading.snapshot.dailyPnl == 0 && trading.snapshot.totalPnl == 80)
        #expect(trading.snapshot.trades == 11 && trading.snapshot.successRate.map { abs($0 - 100 * 10 / 11) < 1e-9 } == true)
    }
}
