import FleetwatchAgent
import Foundation

/// One simulated trading bot: trades with a success rate, a PnL random walk, API calls and errors,
/// nonce generation and failures, exchange WebSocket reconnects and latency, balance checks and
/// resource use, all reported through the agent library exactly as a real bot would.
final class SimulatedBot: Sendable {
    struct Rates: Sendable {
        var tradesPerSecond = 2.0
        var successRate = 0.95
        var apiErrorRate = 0.0003
        /// Nonces generated per second (every signed exchange request and websocket subscription takes one).
        var noncesPerSecond = 2500.0
        var nonceFailureRate = 0.0005
        var reconnectsPerHour = 2.0
        /// Simulated memory growth (a leak), MB per second.
        var memoryLeakMBPerSecond = 0.0
        /// Starting memory, MB (random 120–220 when nil).
        var startMemoryMB: Double?
    }

    let agent: MonitorAgent
    let rates: Rates
    let trades, tradesFailed, apiCalls, apiErrors, nonces, nonceFailures, reconnects: CounterHandle
    let successRate, totalPnl, dailyPnl, memory, cpu, logSize, latency, openOrders, positions: GaugeHandle
    let tradeTime, balanceTime: DurationHandle
    let wsStatus, balanceHealth, mode: StateHandle
    let tradingEnabled: GaugeHandle
    let simulateResources: Bool
    let exchange = SimulatedExchange()

    init(agent: MonitorAgent, rates: Rates, simulateResources: Bool) {
        self.agent = agent
        mode = agent.state("bot_mode")
        tradingEnabled = agent.gauge("trading_enabled")
        self.rates = rates
        self.simulateResources = simulateResources
        trades = agent.counter("trades_executed")
        tradesFailed = agent.counter("trades_failed")
        apiCalls = agent.counter("api_calls")
        apiErrors = agent.counter("api_errors")
        nonces = agent.counter("nonces_generated")
        nonceFailures = agent.counter("nonce_failures")
        reconnects = agent.counter("websocket_reconnects")
        successRate = agent.gauge("success_rate")
        totalPnl = agent.gauge("total_pnl")
        dailyPnl = agent.gauge("daily_pnl")
        memory = agent.gauge("memory_usage_mb")
        cpu = agent.gauge("cpu_usage_percent")
        logSize = agent.gauge("log_file_size_mb")
        latency = agent.gauge("websocket_latency_ms")
        openOrders = agent.gauge("open_orders")
        positions = agent.gauge("open_positions")
        tradeTime = agent.duration("trade_execution_time")
        balanceTime = agent.duration("balance_check_time")
        wsStatus = agent.state("websocket_status")
        balanceHealth = agent.state("balance_manager_health")
    }

    /// Trades until cancelled.
    func run() async {
        var rng = SystemRandomNumberGenerator()
        var ok = 0.0, total = 0.0
        var pnl = 0.0, daily = 0.0
        var mem = rates.startMemoryMB ?? Double.random(in: 120...220, using: &rng), log = Double.random(in: 0.5...2, using: &rng)
        wsStatus.set("connected")
        balanceHealth.set("healthy")
        let tick = 1.0 / max(rates.tradesPerSecond, 0.01)
        var sinceBalance = 0.0
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int64(tick * 1000)))
            let trading = await exchange.trade(using: &rng)
            let emergency = await exchange.emergencyMode
            mode.set(emergency ? "emergency" : trading ? "trading" : "halted")
            tradingEnabled.set(trading ? 1 : 0)
            openOrders.set(Double(await exchange.orders.count))
            positions.set(Double(await exchange.positions.values.filter { abs($0) > 1e-9 }.count))
            guard trading else { continue }   // stopped: keeps reporting, no longer trades
            // A trade: a few API calls, a nonce each, an execution time, an outcome.
            let calls = Int64.random(in: 1...3, using: &rng)
            apiCalls.increment(by: calls)
            nonces.increment(by: Int64(rates.noncesPerSecond * tick * Double.random(in: 0.9...1.1, using: &rng)))
            for _ in 0..<calls where Double.random(in: 0..<1, using: &rng) < rates.apiErrorRate { apiErrors.increment() }
            if Double.random(in: 0..<1, using: &rng) < rates.nonceFailureRate { nonceFailures.increment() }
            let ms = max(5, 80 + 60 * Self.gaussian(&rng) + (Double.random(in: 0..<1, using: &rng) < 0.01 ? 2000 : 0))
            tradeTime.record(milliseconds: (ms * 100).rounded() / 100)
            trades.increment()
            total += 1
            if Double.random(in: 0..<1, using: &rng) < rates.successRate {
                ok += 1
                let step = (Self.gaussian(&rng) * 1.5 + 0.04) * 100
                pnl += step.rounded() / 100
                daily += step.rounded() / 100
            } else {
                tradesFailed.increment()
            }
            successRate.set((ok / total * 10000).rounded() / 100)
            totalPnl.set((pnl * 100).rounded() / 100)
            dailyPnl.set((daily * 100).rounded() / 100)
            latency.set((max(5, 40 + 15 * Self.gaussian(&rng)) * 10).rounded() / 10)
            if Double.random(in: 0..<1, using: &rng) < rates.reconnectsPerHour / 3600 * tick {
                reconnects.increment()
                wsStatus.set("reconnecting")
            } else {
                wsStatus.set("connected")
            }
            sinceBalance += tick
            if sinceBalance >= 5 {
                sinceBalance = 0
                let b = max(20, 150 + 80 * Self.gaussian(&rng))
                balanceTime.record(milliseconds: (b * 100).rounded() / 100)
                balanceHealth.set(b > 1500 ? "degraded" : "healthy")
            }
            if simulateResources {
                mem = max(80, mem + 0.02 * Self.gaussian(&rng) + 0.001 + rates.memoryLeakMBPerSecond * tick)
                memory.set((mem * 10).rounded() / 10)
                cpu.set((max(0.1, 3 + 1.5 * Self.gaussian(&rng)) * 10).rounded() / 10)
                log += 0.00002
                logSize.set((log * 1000).rounded() / 1000)
            }
        }
    }

    static func gaussian(_ rng: inout SystemRandomNumberGenerator) -> Double {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &rng), u2 = Double.random(in: 0..<1, using: &rng)
        return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}
