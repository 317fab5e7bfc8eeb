/// A wall clock in milliseconds that tests move by hand, for the pure state machines.
public struct ManualClock: Sendable {
    public private(set) var nowMs: Int64
    public init(startMs: Int64 = 1_700_000_000_000) { nowMs = startMs }
    public mutating func advance(ms: Int64) { nowMs += ms }
}
