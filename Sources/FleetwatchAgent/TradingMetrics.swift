import Foundation
import Synchronization

/// The reference system's trading metrics in a few calls, under the names its alert rules read:
///
/// | Call | Metrics |
/// |---|---|
/// | `recordTrade(success:pnl:duration:)` | `trades_executed`, `trades_failed` (counters), `success_rate` (percent), `total_pnl`, `daily_pnl` (gauges), `trade_execution_time` (duration) |
/// | `recordAPICall(error:)` | `api_calls`, `api_errors` (counters) — the API error-rate rule needs both |
/// | `recordNonce(failed:)` | `nonces_generated`, `nonce_failures` (counters) |
/// | `recordReconnect()` | `websocket_reconnects` (counter) |
/// | `recordBalanceCheck(_:)` | `balance_check_time` (duration) |
/// | `setWebSocket(status:latencyMs:)` | `websocket_status` (state), `websocket_latency_ms` (gauge) |
/// | `setBalanceManager(health:)`, `setCriticalComponent(status:)` | `balance_manager_health`, `critical_component_status` (states) |
///
/// `daily_pnl` starts again at 0 at midnight in `timeZone` (checked at every call and at every flush, so it
/// resets even on a day without trades). Counters and totals start at 0 with the process unless `restore`
/// gives them their last values. Every call is thread-safe and never blocks on I/O.
public final class TradingMetrics: Sendable {
    private struct State {
        var trades: Int64 = 0
        var failed: Int64 = 0
        var totalPnl: Double = 0
        var dailyPnl: Double = 0
        var day: Int
    }

    private let agent: MonitorAgent
    private let calendar: Calendar
    private let now: @Sendable () -> Date
    private let state: Mutex<State>

    /// - Parameters:
    ///   - agent: where the metrics go.
    ///   - timeZone: whose midnight resets `daily_pnl` (the exchange's or the desk's; default UTC).
    ///   - now: the clock (tests give their own).
    public init(agent: MonitorAgent, timeZone: TimeZone = TimeZone(identifier: "UTC")!,
                now: @escaping @Sendable () -> Date = { Date() }) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        self.agent = agent
        self.calendar = calendar
        self.now = now
        state = Mutex(State(day: Self.dayNumber(now(), calendar)))
        agent.register(ClosureCollector(name: "trading-day") { [weak self] in
            self?.rollOverIfNewDay()
            return []
        })
    }

    /// Continues from the values a previous run of the bot reached (call before the first trade).
    public func restore(trades: Int64, failed: Int64, totalPnl: Double, dailyPnl: Double) {
        state.withLock { s in
            s.trades = max(0, trades)
            s.failed = min(max(0, failed), s.trades)
            s.totalPnl = totalPnl.isFinite ? totalPnl : 0
            s.dailyPnl = dailyPnl.isFinite ? dailyPnl : 0
        }
        publish()
    }

    /// One trade: whether it succeeded, its profit or loss, and how long it took.
    public func recordTrade(success: Bool, pnl: Double = 0, duration: Duration? = nil) {
        rollOverIfNewDay()
        state.withLock { s in
            s.trades += 1
            if !success { s.failed += 1 }
            if pnl.isFinite {
                s.totalPnl += pnl
                s.dailyPnl += pnl
            }
        }
        agent.counter("trades_executed").increment()
        if !success { agent.counter("trades_failed").increment() }
        if let duration { agent.duration("trade_execution_time").record(duration) }
        publish()
    }

    /// One call to the exchange's API, and whether it failed.
    public func recordAPICall(error: Bool = false) {
        agent.counter("api_calls").increment()
        // Created at 0 on the first call, so the error-rate rule has both of its counters from the start.
        let errors = agent.counter("api_errors")
        if error { errors.increment() } else { errors.increment(by: 0) }
    }

    /// One nonce generated, and whether generating it failed.
    public func recordNonce(failed: Bool = false) {
        agent.counter("nonces_generated").increment()
        if failed { agent.counter("nonce_failures").increment() }
    }

    /// The exchange WebSocket reconnected.
    public func recordReconnect() {
        agent.counter("websocket_reconnects").increment()
    }

    /// How long a balance check took.
    public func recordBalanceCheck(_ duration: Duration) {
        agent.duration("balance_check_time").record(duration)
    }

    /// The exchange WebSocket's state (`connected`, `reconnecting`, `disconnected`, …) and latency.
    public func setWebSocket(status: String, latencyMs: Double? = nil) {
        agent.state("websocket_status").set(status)
        if let latencyMs { agent.gauge("websocket_latency_ms").set(latencyMs) }
    }

    /// The balance manager's health (`healthy`, `degraded`, `failed`, …).
    public func setBalanceManager(health: String) {
        agent.state("balance_manager_health").set(health)
    }

    /// The bot's critical component (`ok`, `critical`, `failed`, `dead`: the last three stop the bot when the
    /// hub's automatic shutdown is on).
    public func setCriticalComponent(status: String) {
        agent.state("critical_component_status").set(status)
    }

    /// Trades, failures, success rate, total and daily PnL so far.
    public var snapshot: (trades: Int64, failed: Int64, successRate: Double?, totalPnl: Double, dailyPnl: Double) {
        state.withLock { s in
            (s.trades, s.failed, s.trades > 0 ? Double(s.trades - s.failed) / Double(s.trades) * 100 : nil, s.totalPnl, s.dailyPnl)
        }
    }

    private func publish() {
        let s = snapshot
        if let rate = s.successRate { agent.gauge("success_rate").set(rate) }
        agent.gauge("total_pnl").set(s.totalPnl)
        agent.gauge("daily_pnl").set(s.dailyPnl)
    }

    /// Sets `daily_pnl` back to 0 on the first call of a new day in the time zone.
    func rollOverIfNewDay() {
        let today = Self.dayNumber(now(), calendar)
        let rolled = state.withLock { s -> Bool in
            guard today != s.day else { return false }
            s.day = today
            s.dailyPnl = 0
            return true
        }
        if rolled { agent.gauge("daily_pnl").set(0) }
    }

    static func dayNumber(_ date: Date, _ calendar: Calendar) -> Int {
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return (c.year ?? 0) * 10_000 + (c.month ?? 0) * 100 + (c.day ?? 0)
    }
}
