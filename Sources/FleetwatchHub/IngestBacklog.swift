import Synchronization

/// Received agent messages waiting to be handled, over every connection of this replica. Each connection
/// bounds its own backlog (`hub.max_pending_bytes`); this bounds their sum (`hub.max_pending_bytes_total`),
/// so a fleet that sends faster than the hub stores — thousands of agents, or a burst after an outage —
/// makes the bots wait (their agents keep the batches) instead of growing the hub until the kernel kills
/// it. While the sum is over the limit, every connection's reader stops after the message it just read;
/// readers go on, all of them, as soon as handling brings the sum back under the limit.
///
/// Stored batches not yet evaluated for alerts count too (`hub.max_unevaluated_batches`): evaluation never
/// holds a batch's acknowledgement up, but when it falls behind (a CPU-starved hub, an alert store that
/// answers slowly) the readers stop as they do for bytes, so the batches waiting for it — each holding its
/// samples — cannot grow the hub without bound.
final class IngestBacklog: Sendable {
    private struct State {
        var bytes = 0
        var unevaluated = 0
        var parked: [ObjectIdentifier: @Sendable () -> Void] = [:]
        var peak = 0

        func isOver(_ limit: Int, _ maxUnevaluated: Int) -> Bool { bytes > limit || unevaluated > maxUnevaluated }
        /// Parked readers go on once the bytes are within their limit and the unevaluated batches at 90 % of
        /// theirs: waking every reader the moment evaluation is one batch under its limit would have them all
        /// read a message and go over it again at once.
        func mayWake(_ limit: Int, _ maxUnevaluated: Int) -> Bool {
            bytes <= limit && unevaluated <= maxUnevaluated - maxUnevaluated / 10
        }
    }
    private let state = Mutex(State())
    let limit: Int
    let maxUnevaluated: Int

    init(limit: Int, maxUnevaluated: Int = .max) {
        self.limit = limit
        self.maxUnevaluated = maxUnevaluated
    }

    /// A message of `bytes` was read.
    func add(_ bytes: Int) {
        state.withLock { s in
            s.bytes += bytes
            s.peak = max(s.peak, s.bytes)
        }
    }

    /// Messages of `bytes` were handled (or dropped with their connection); wakes the parked readers once the
    /// sum is within the limit.
    func remove(_ bytes: Int) {
        release { $0.bytes -= bytes }
    }

    /// A stored batch was handed to alert evaluation.
    func submitted() {
        state.withLock { $0.unevaluated += 1 }
    }

    /// A batch handed to alert evaluation was evaluated (or refused by an engine that stopped); wakes the parked
    /// readers once both sums are back within their limits (the unevaluated batches at 90 % of theirs).
    func evaluated() {
        release { $0.unevaluated -= 1 }
    }

    private func release(_ change: (inout State) -> Void) {
        let wake = state.withLock { s -> [@Sendable () -> Void] in
            change(&s)
            guard !s.parked.isEmpty, s.mayWake(limit, maxUnevaluated) else { return [] }
            defer { s.parked.removeAll(keepingCapacity: true) }
            return Array(s.parked.values)
        }
        wake.forEach { $0() }
    }

    var isOver: Bool { state.withLock { $0.isOver(limit, maxUnevaluated) } }

    /// Parks `owner` until the sum is within the limit: false (and nothing parked) if it is already.
    func park(_ owner: ObjectIdentifier, wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            guard s.isOver(limit, maxUnevaluated) else { return false }
            s.parked[owner] = wake
            return true
        }
    }

    func unpark(_ owner: ObjectIdentifier) {
        _ = state.withLock { $0.parked.removeValue(forKey: owner) }
    }

    /// Bytes waiting now, the most that ever waited, and readers parked (for `/metrics` and tests).
    var figures: (bytes: Int, peak: Int, parked: Int) {
        state.withLock { ($0.bytes, $0.peak, $0.parked.count) }
    }

    /// Batches handed to alert evaluation and not yet evaluated (`/metrics`, tests).
    var unevaluated: Int { state.withLock { $0.unevaluated } }
}
