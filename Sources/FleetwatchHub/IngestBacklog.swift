import Synchronization

/// Received agent messages waiting to be handled, over every connection of this replica. Each connection
/// bounds its own backlog (`hub.max_pending_bytes`); this bounds their sum (`hub.max_pending_bytes_total`),
/// so a fleet that sends faster than the hub stores — thousands of agents, or a burst after an outage —
/// makes the bots wait (their agents keep the batches) instead of growing the hub until the kernel kills
/// it. While the sum is over the limit, every connection's reader stops after the message it just read;
/// readers go on, all of them, as soon as handling brings the sum back under the limit.
final class IngestBacklog: Sendable {
    private struct State {
        var bytes = 0
        var parked: [ObjectIdentifier: @Sendable () -> Void] = [:]
        var peak = 0
    }
    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) { self.limit = limit }

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
        let wake = state.withLock { s -> [@Sendable () -> Void] in
            s.bytes -= bytes
            guard s.bytes <= limit, !s.parked.isEmpty else { return [] }
            defer { s.parked.removeAll(keepingCapacity: true) }
            return Array(s.parked.values)
        }
        wake.forEach { $0() }
    }

    var isOver: Bool { state.withLock { $0.bytes > limit } }

    /// Parks `owner` until the sum is within the limit: false (and nothing parked) if it is already.
    func park(_ owner: ObjectIdentifier, wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            guard s.bytes > limit else { return false }
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
}
