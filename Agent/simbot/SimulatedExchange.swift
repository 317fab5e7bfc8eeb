import FleetwatchAgent
import Foundation

/// The simulated bot's own view of its exchange account: open orders, positions, whether it may trade.
/// The emergency steps act on this for real: trading stops, orders are cancelled, positions are sold.
actor SimulatedExchange {
    struct Order { let id: Int; let symbol: String; let side: String; let quantity: Double; let price: Double }

    private(set) var tradingEnabled = true
    private(set) var emergencyMode = false
    private(set) var orders: [Int: Order] = [:]
    private(set) var positions: [String: Double] = [:]
    private var nextOrderID = 1
    let symbols = ["BTC-USD", "ETH-USD", "SOL-USD"]

    /// One trading decision: place or fill an order. Refused (false) once trading is stopped.
    func trade(using rng: inout SystemRandomNumberGenerator) -> Bool {
        guard tradingEnabled else { return false }
        let symbol = symbols[Int.random(in: 0..<symbols.count, using: &rng)]
        if orders.count < 20, Bool.random(using: &rng) {
            let side = Bool.random(using: &rng) ? "buy" : "sell"
            orders[nextOrderID] = Order(id: nextOrderID, symbol: symbol, side: side,
                                        quantity: (Double.random(in: 0.01...0.5, using: &rng) * 1000).rounded() / 1000,
                                        price: Self.price(symbol))
            nextOrderID += 1
        } else if let (id, order) = orders.first {
            orders[id] = nil   // filled
            positions[order.symbol, default: 0] += order.side == "buy" ? order.quantity : -order.quantity
        }
        return true
    }

    func stopTrading() -> String {
        let was = tradingEnabled
        tradingEnabled = false
        return was ? "trading loop halted" : "trading was already halted"
    }

    func cancelOpenOrders() -> String {
        let n = orders.count
        orders.removeAll()
        return "cancelled \(n) open order\(n == 1 ? "" : "s")"
    }

    func liquidatePositions() -> String {
        let open = positions.filter { abs($0.value) > 1e-9 }.sorted { $0.key < $1.key }
        positions.removeAll()
        if open.isEmpty { return "no open positions" }
        return "closed " + open.map { String(format: "%@ %.3f at %.2f", $0.key, $0.value, Self.price($0.key)) }.joined(separator: ", ")
    }

    func setEmergencyMode() -> String {
        emergencyMode = true
        return "emergency mode set; trading stays halted until an operator resumes"
    }

    func resume() -> String {
        emergencyMode = false
        tradingEnabled = true
        return "emergency mode cleared; trading resumed"
    }

    static func price(_ symbol: String) -> Double {
        switch symbol {
        case "BTC-USD": return 43_210.5
        case "ETH-USD": return 2_310.25
        default: return 98.4
        }
    }
}

/// The simulated bot's emergency handler: every step acts on its simulated exchange account and is printed.
struct SimulatedEmergencyHandler: EmergencyHandler {
    let bot: String
    let exchange: SimulatedExchange
    let liquidationEnabled: Bool
    var stepDelay = 0.0

    func stopTrading() async throws -> String {
        if stepDelay > 0 { try await Task.sleep(for: .milliseconds(Int64(stepDelay * 1000))) }
        return log("stop_trading", await exchange.stopTrading())
    }
    func cancelOpenOrders() async throws -> String { log("cancel_orders", await exchange.cancelOpenOrders()) }
    func liquidatePositions() async throws -> String { log("liquidate", await exchange.liquidatePositions()) }
    func setEmergencyMode() async throws -> String { log("latch_emergency", await exchange.setEmergencyMode()) }
    func resume() async throws -> String { log("resume", await exchange.resume()) }

    private func log(_ step: String, _ detail: String) -> String {
        FileHandle.standardOutput.write(Data("\(bot) EMERGENCY \(step): \(detail)\n".utf8))
        return detail
    }
}
