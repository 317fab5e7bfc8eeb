import FleetwatchProtocol

/// The life of the agent's connection to the hub. Pure: time and randomness come in with each event,
/// and each event returns the action the driver must perform.
public struct ConnectionStateMachine: Sendable {
    public enum State: Equatable, Sendable {
        case idle
        case connecting(attempt: Int)
        case handshaking(attempt: Int, sinceMs: Int64)
        case connected(attempt: Int, sinceMs: Int64, lastHeardMs: Int64, lastSentMs: Int64)
        case waiting(attempt: Int, untilMs: Int64)
        case stopped
    }

    public enum Action: Equatable, Sendable {
        case none
        /// Open a WebSocket to the hub.
        case connect
        /// Send the hello frame.
        case sendHello
        /// Start sending batches; the hub already holds this epoch up to `storedSequence`.
        case startStreaming(storedSequence: UInt64)
        /// Send a heartbeat frame.
        case sendHeartbeat
        /// Close the connection: nothing was heard for two heartbeat intervals.
        case closeSilentConnection
        /// Wait this long, then report `waited`.
        case wait(Duration)
    }

    public private(set) var state: State = .idle
    public let backoff: Backoff
    /// Heartbeat interval; the hub's welcome overrides it.
    public private(set) var heartbeatMs: Int64
    /// A connection that lasted this long resets the backoff.
    public var stableAfterMs: Int64 = 10_000
    /// The close code of the last connection, for status reporting.
    public private(set) var lastCloseCode: CloseCode?

    public init(backoff: Backoff = Backoff(), heartbeatMs: Int64 = 5_000) {
        self.backoff = backoff
        self.heartbeatMs = heartbeatMs
    }

    /// Whether batches may be sent now.
    public var isStreaming: Bool {
        if case .connected = state { return true }
        return false
    }

    public mutating func start() -> Action {
        guard case .idle = state else { return .none }
        state = .connecting(attempt: 0)
        return .connect
    }

    public mutating func stop() {
        state = .stopped
    }

    public mutating func connectFailed(nowMs: Int64, random: Double) -> Action {
        guard case .connecting(let attempt) = state else { return .none }
        return scheduleRetry(attempt: attempt, nowMs: nowMs, random: random)
    }

    public mutating func opened(nowMs: Int64) -> Action {
        guard case .connecting(let attempt) = state else { return .none }
        state = .handshaking(attempt: attempt, sinceMs: nowMs)
        return .sendHello
    }

    public mutating func welcomed(_ welcome: Welcome, nowMs: Int64) -> Action {
        guard case .handshaking(let attempt, _) = state else { return .none }
        heartbeatMs = Int64(max(welcome.heartbeatIntervalMs, 100))
        state = .connected(attempt: attempt, sinceMs: nowMs, lastHeardMs: nowMs, lastSentMs: nowMs)
        return .startStreaming(storedSequence: welcome.storedSequence)
    }

    /// A frame arrived from the hub.
    public mutating func heard(nowMs: Int64) {
        if case .connected(let a, let since, _, let sent) = state {
            state = .connected(attempt: a, sinceMs: since, lastHeardMs: nowMs, lastSentMs: sent)
        }
    }

    /// When a frame was last sent to the hub on this connection (nil when not connected).
    public var lastSentMs: Int64? {
        if case .connected(_, _, _, let sent) = state { sent } else { nil }
    }

    /// A frame was sent to the hub.
    public mutating func sent(nowMs: Int64) {
        if case .connected(let a, let since, let heard, _) = state {
            state = .connected(attempt: a, sinceMs: since, lastHeardMs: heard, lastSentMs: nowMs)
        }
    }

    /// Periodic check: heartbeats and silence detection.
    public mutating func tick(nowMs: Int64) -> Action {
        switch state {
        case .handshaking(_, let since):
            return nowMs - since > 2 * heartbeatMs ? .closeSilentConnection : .none
        case .connected(_, _, let heard, let sent):
            if nowMs - heard > 2 * heartbeatMs { return .closeSilentConnection }
            if nowMs - sent >= heartbeatMs { return .sendHeartbeat }
            return .none
        default:
            return .none
        }
    }

    /// The connection ended, with the hub's close code if it sent one.
    public mutating func closed(code: CloseCode?, nowMs: Int64, random: Double) -> Action {
        lastCloseCode = code
        switch state {
        case .connecting(let attempt), .handshaking(let attempt, _):
            return scheduleRetry(attempt: attempt, nowMs: nowMs, random: random, code: code)
        case .connected(let attempt, let since, _, _):
            let next = nowMs - since >= stableAfterMs ? 0 : attempt
            return scheduleRetry(attempt: next, nowMs: nowMs, random: random, code: code)
        default:
            return .none
        }
    }

    /// The wait is over.
    public mutating func waited() -> Action {
        guard case .waiting(let attempt, _) = state else { return .none }
        state = .connecting(attempt: attempt)
        return .connect
    }

    private mutating func scheduleRetry(attempt: Int, nowMs: Int64, random: Double, code: CloseCode? = nil) -> Action {
        // A wrong token or protocol version will not fix itself quickly: retry at the slowest pace.
        let delay = code?.isConfigurationError == true
            ? backoff.maximum
            : backoff.delay(attempt: attempt, unit: random)
        state = .waiting(attempt: attempt + 1, untilMs: nowMs + delay.wholeMilliseconds)
        return .wait(delay)
    }
}
