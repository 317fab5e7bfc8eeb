import FleetwatchProtocol

/// Recent readings of one cumulative counter, enough to answer "how much did it rise in the last N seconds".
/// A reading below the previous one is a restart of the counting process: the new value counts as the rise.
///
/// Each reading carries the rise counted since the window began, so the rise between two readings is a
/// subtraction and readings in between can be dropped without changing it. That bounds what one counter
/// keeps, whatever a bot sends: a reading at the same millisecond as the last one replaces it (its rise stays
/// counted), and past `maxReadings` every other older reading is dropped (only the window's start gets coarser).
struct CounterWindow: Sendable {
    struct Reading: Sendable, Equatable {
        var ms: Int64
        var value: Double
        /// Rise counted from the first reading kept ever to this one.
        var total: Double
    }

    /// Most readings kept; at one reading a second that is over an hour.
    static let maxReadings = 4_096

    private(set) var readings: [Reading] = []
    let keepMs: Int64

    init(keepMs: Int64) { self.keepMs = keepMs }

    /// Adds every reading of a counter series, in order.
    mutating func add(_ s: Series) {
        for j in s.timestamps.indices where j < s.values.count { add(ms: s.timestamps[j], value: s.values[j]) }
    }

    mutating func add(ms: Int64, value: Double) {
        guard let last = readings.last else {
            readings.append(Reading(ms: ms, value: value, total: 0))
            return
        }
        if ms < last.ms { return }   // late reading: ignore
        let delta = value - last.value
        let reading = Reading(ms: ms, value: value, total: last.total + (delta >= 0 ? delta : value))
        if ms == last.ms, readings.count > 1 {
            readings[readings.count - 1] = reading
        } else {
            readings.append(reading)
        }
        // Keep one reading at or before the cutoff as the baseline.
        let firstKept = firstIndex(atOrAfter: ms - keepMs)
        if firstKept > 1 { readings.removeFirst(firstKept - 1) }
        if readings.count > Self.maxReadings { thin() }
    }

    /// The rise over the last `windowMs` before `nowMs`, and the time span it covers (ms); nil without two readings.
    func increase(windowMs: Int64, nowMs: Int64) -> (amount: Double, spanMs: Int64)? {
        guard let last = readings.last else { return nil }
        // The last reading at or before the cutoff, else the first.
        let startIndex = max(firstIndex(atOrAfter: nowMs - windowMs + 1) - 1, 0)
        guard startIndex < readings.count - 1 else { return nil }
        let start = readings[startIndex]
        return (last.total - start.total, last.ms - start.ms)
    }

    /// The first reading with `ms >= t` (readings are in time order), `readings.count` if none.
    private func firstIndex(atOrAfter t: Int64) -> Int {
        var lo = 0, hi = readings.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if readings[mid].ms < t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Drops every other reading of the older half; the newest half and the first reading stay.
    private mutating func thin() {
        let half = readings.count / 2
        var kept: [Reading] = []
        kept.reserveCapacity(readings.count)
        for i in 0..<half where i % 2 == 0 { kept.append(readings[i]) }
        kept.append(contentsOf: readings[half...])
        readings = kept
    }
}
