import FleetwatchProtocol

/// The life of one emergency command, pure: what a delivery and each agent result do to it, and which steps a
/// delivery sends. Both of the hub's stores apply these transitions — the PostgreSQL ledger (in one statement,
/// with the target state and the ranks as parameters) and the break-glass journal kept through a database
/// outage — so they cannot drift apart.
public struct CommandLifecycle: Sendable, Equatable {
    public private(set) var state: CommandState

    public init(state: CommandState) { self.state = state }

    /// What a transition asks the store to record besides the state.
    public enum Effect: Sendable, Equatable {
        /// First sent: `delivered_at`, and a "delivered" audit row.
        case firstDelivery
        /// The agent answered: `acknowledged_at` (if not set yet).
        case acknowledged
        /// Ended: `completed_at` and the agent's detail.
        case completed
        /// Ended: `failed_at` and the agent's detail.
        case failed
    }

    /// The command is sent (again): a pending one becomes delivered; any other state stays.
    public mutating func deliver() -> [Effect] {
        guard state == .pending else { return [] }
        state = .delivered
        return [.firstDelivery]
    }

    /// The state an agent's result asks for: a whole-command `failed` (step 0) fails it; `completed` completes
    /// it; a `refused` result (an expired frame, clock skew) leaves it delivered, so it is sent again; any other
    /// result acknowledges it.
    public static func target(of status: CommandResultFrame.Status, step: UInt8) -> CommandState {
        switch status {
        case .completed: return .completed
        case .refused: return .delivered
        case .failed where step == 0: return .failed
        default: return .acknowledged
        }
    }

    /// Applies an agent's result: the effects of moving forward, or none if the result does not move the
    /// command (it is recorded as a step all the same).
    public mutating func apply(_ status: CommandResultFrame.Status, step: UInt8) -> [Effect] {
        let next = Self.target(of: status, step: step)
        guard next.rank > state.rank else { return [] }
        state = next
        switch next {
        case .pending, .delivered: return []
        case .acknowledged: return [.acknowledged]
        case .completed: return [.acknowledged, .completed]
        case .failed: return [.acknowledged, .failed]
        }
    }

    /// The steps a delivery sends. A finished command sent again (the one that latched the bot's emergency
    /// mode, on every reconnect until an operator resumes) only re-enters emergency mode: stop trading and
    /// latch. Liquidation goes out only while granted: asked for, and allowed for the bot then and at every
    /// send since.
    public static func stepsToSend(asked: CommandFrame.Actions, state: CommandState, liquidationGranted: Bool) -> CommandFrame.Actions {
        if state.isFinal { return asked.intersection([.stopTrading, .latchEmergency]) }
        return liquidationGranted ? asked : asked.subtracting(.liquidate)
    }
}
