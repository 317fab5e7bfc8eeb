/// Recent readings of one cumulative counter, enough to answer "how much did it rise in the last N seconds".
/// A reading below the previous one is a restart of the counting process: the new value counts as the rise.
struct CounterWindow: Sendable {
    private(set) var readings: [(ms: Int64, value: Double)] = []
    let keepMs: Int64

    init(keepMs: Int64) { self.keepMs = keepMs }

    mutating func add(ms: Int64, value: Double) {
        if let last = readings.last, ms < last.ms { return }   // late reading: ignore
        readings.append((ms, value))
        let cutoff = ms - keepMs
        if let firstKept = readings.firstIndex(where: { $0.ms >= cutoff }), firstKept > 1 {
            readings.removeFirst(firstKept - 1)   // keep one reading at or before the cutoff as the baseline
        }
    }

    /// The rise over the last `windowMs` before `nowMs`, and the time span it covers (ms); nil without two readings.
    func increase(windowMs: Int64, nowMs: Int64) -> (amount: Double, spanMs: Int64)? {
        let cutoff = nowMs - windowMs
        guard let last = readings.last else { return nil }
        let startIndex = readings.lastIndex(where: { $0.ms <= cutoff }) ?? 0
        guard startIndex < readings.count - 1 else { return nil }
        var amount = 0.0
        for i in (startIndex + 1)..<readings.count {
            let delta = readings[i].value - readings[i - 1].value
            amount += delta >= 0 ? delta : readings[i].value
        }
        return (amount, last.ms - readings[startIndex].ms)
    }
}
