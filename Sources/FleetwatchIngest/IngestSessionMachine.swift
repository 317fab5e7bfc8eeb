import FleetwatchProtocol

/// The hub's side of one agent connection. Pure: frames and time come in, decisions come out.
public struct IngestSessionMachine: Sendable {
    public enum State: Equatable, Sendable {
        case awaitingHello(sinceMs: Int64)
        case authenticating
        case streaming(lastHeardMs: Int64, lastSentMs: Int64)
        case closed
    }

    public enum Decision: Equatable, Sendable {
        case authenticate(Hello)
        case store(BatchFrame)
        /// A protocol-3 delta batch (the session checks the connection's version and holds the decoder).
        case storeDelta(DeltaBatchFrame)
        case commandResult(CommandResultFrame)
        case declaration(EmergencyDeclaration)
        case ignore
        case close(CloseCode, String)
    }

    public enum TickDecision: Equatable, Sendable {
        case none
        case sendHeartbeat
        case close(CloseCode, String)
    }

    public private(set) var state: State
    let heartbeatMs: Int64
    let helloTimeoutMs: Int64

    public init(nowMs: Int64, heartbeatMs: Int64, helloTimeoutMs: Int64) {
        state = .awaitingHello(sinceMs: nowMs)
        self.heartbeatMs = heartbeatMs
        self.helloTimeoutMs = helloTimeoutMs
    }

    /// A decoded frame arrived.
    public mutating func received(_ frame: Frame, nowMs: Int64) -> Decision {
        switch (state, frame) {
        case (.awaitingHello, .hello(let hello)):
            state = .authenticating
            return .authenticate(hello)
        case (.awaitingHello, _):
            return close(.helloExpected, "the first frame must be a hello")
        case (.authenticating, _):
            return close(.protocolError, "frame sent before the welcome")
        case (.streaming(_, let sent), let f):
            state = .streaming(lastHeardMs: nowMs, lastSentMs: sent)
            switch f {
            case .batch(let b): return .store(b)
            case .deltaBatch(let d): return .storeDelta(d)
            case .heartbeat: return .ignore
            case .commandResult(let r): return .commandResult(r)
            case .emergencyDeclaration(let d): return .declaration(d)
            case .hello: return close(.protocolError, "second hello on one connection")
            case .welcome, .ack, .command: return close(.protocolError, "agent sent a hub-only frame")
            }
        case (.closed, _):
            return .ignore
        }
    }

    /// A message could not be decoded.
    public mutating func undecodable(_ error: WireError) -> Decision {
        close(error.closeCode, error.detail)
    }

    /// Authentication finished.
    public mutating func authenticated(nowMs: Int64) {
        if state == .authenticating { state = .streaming(lastHeardMs: nowMs, lastSentMs: nowMs) }
    }

    /// Authentication refused.
    public mutating func refused() -> Decision {
        close(.authenticationFailed, "unknown bot id or wrong token")
    }

    /// Bytes from the agent arrived at `atMs` (read from the socket, perhaps not handled yet): the agent is not
    /// silent, whatever the hub's own backlog.
    public mutating func heard(atMs: Int64) {
        if case .streaming(let heard, let sent) = state, atMs > heard { state = .streaming(lastHeardMs: atMs, lastSentMs: sent) }
    }

    /// A frame was sent to the agent.
    public mutating func sent(nowMs: Int64) {
        if case .streaming(let heard, _) = state { state = .streaming(lastHeardMs: heard, lastSentMs: nowMs) }
    }

    /// Periodic check.
    public mutating func tick(nowMs: Int64) -> TickDecision {
        switch state {
        case .awaitingHello(let since) where nowMs - since > helloTimeoutMs:
            state = .closed
            return .close(.helloExpected, "no hello within \(helloTimeoutMs) ms")
        case .streaming(let heard, let sent):
            if nowMs - heard > 2 * heartbeatMs {
                state = .closed
                return .close(.heartbeatTimeout, "nothing heard for \(nowMs - heard) ms")
            }
            return nowMs - sent >= heartbeatMs ? .sendHeartbeat : .none
        default:
            return .none
        }
    }

    private mutating func close(_ code: CloseCode, _ reason: String) -> Decision {
        state = .closed
        return .close(code, reason)
    }
}
