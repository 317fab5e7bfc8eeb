import Synchronization

/// The stall warnings of one tick of the `ConnectionTicker`, logged together after it: the first few connections
/// by name, the rest counted in one line. When the hub-wide backlog or a slow database holds thousands of
/// connections at once, they all pass the minute in the same tick; a line each would flood the log and hold the
/// ticker (and every connection's heartbeat and silence checks) behind the writes.
final class StallReports: Sendable {
    private struct Pending {
        var lines: [String] = []
        var reserved = 0
        var unnamed = 0
    }
    private let pending = Mutex(Pending())
    /// Connections named per tick; the rest are counted.
    static let named = 5

    /// A stuck connection's line, built only for the first `named` of a tick.
    func add(_ line: () -> String) {
        let named = pending.withLock { p -> Bool in
            guard p.reserved < Self.named else {
                p.unnamed += 1
                return false
            }
            p.reserved += 1
            return true
        }
        guard named else { return }
        let text = line()
        pending.withLock { $0.lines.append(text) }
    }

    /// The lines to log for the tick that just ended; the next tick starts empty.
    func take() -> [String] {
        let p = pending.withLock { p -> Pending in
            defer { p = Pending() }
            return p
        }
        guard p.unnamed > 0 else { return p.lines }
        return p.lines + ["\(p.unnamed) more agent connections stuck for over a minute, not listed one by one (the lines above say where such a connection waits)"]
    }
}
