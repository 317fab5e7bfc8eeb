import FleetwatchProtocol
import Synchronization

/// A running total. `increment` is one relaxed atomic add: no lock, no allocation, never throws.
public final class CounterHandle: Sendable {
    /// The metric's name.
    public let name: String
    @usableFromInline let total = Atomic<Int64>(0)

    init(name: String) { self.name = name }

    /// Adds `amount` (default 1). Negative amounts are ignored: a counter only rises.
    @inlinable
    public func increment(by amount: Int64 = 1) {
        if amount > 0 { total.wrappingAdd(amount, ordering: .relaxed) }
    }

    /// The total so far.
    public var value: Int64 { total.load(ordering: .relaxed) }
}

/// A value that goes up and down. `set` is one relaxed atomic store; NaN and infinities are ignored.
public final class GaugeHandle: Sendable {
    /// The metric's name.
    public let name: String
    @usableFromInline static let unset: UInt64 = 0x7FF8_DEAD_0000_0001
    @usableFromInline let bits = Atomic<UInt64>(GaugeHandle.unset)
    @usableFromInline let invalid: Atomic<Int64>

    init(name: String) {
        self.name = name
        self.invalid = Atomic<Int64>(0)
    }

    /// Sets the current value. Non-finite values are dropped and counted, never stored.
    @inlinable
    public func set(_ value: Double) {
        if value.isFinite {
            bits.store(value.bitPattern, ordering: .relaxed)
        } else {
            invalid.wrappingAdd(1, ordering: .relaxed)
        }
    }

    /// Adds `delta` to the current value (an unset gauge counts as 0).
    public func add(_ delta: Double) {
        guard delta.isFinite else { invalid.wrappingAdd(1, ordering: .relaxed); return }
        var old = bits.load(ordering: .relaxed)
        while true {
            let current = old == Self.unset ? 0 : Double(bitPattern: old)
            let (exchanged, original) = bits.compareExchange(
                expected: old, desired: (current + delta).bitPattern, ordering: .relaxed)
            if exchanged { return }
            old = original
        }
    }

    /// The current value, or nil if never set.
    public var value: Double? {
        let b = bits.load(ordering: .relaxed)
        return b == Self.unset ? nil : Double(bitPattern: b)
    }
}

/// A string state such as `websocket_status`. Reported when it changes and at least every repeat interval.
public final class StateHandle: Sendable {
    /// The metric's name.
    public let name: String
    struct Slot {
        var value: String?
        var version: UInt64 = 0
        var reportedVersion: UInt64 = 0
        var reportedAtMs: Int64 = 0
    }
    let slot = Mutex(Slot())

    init(name: String) { self.name = name }

    /// Sets the state. Longer than 256 bytes is cut to 256.
    public func set(_ state: String) {
        slot.withLock { s in
            if s.value != state {
                s.value = state
                s.version &+= 1
            }
        }
    }

    /// The current state, or nil if never set.
    public var value: String? { slot.withLock { $0.value } }

    /// The state to report at `nowMs`, if it changed or was last reported `repeatMs` ago.
    func take(nowMs: Int64, repeatMs: Int64) -> String? {
        slot.withLock { s in
            guard let value = s.value else { return nil }
            guard s.version != s.reportedVersion || nowMs - s.reportedAtMs >= repeatMs else { return nil }
            s.reportedVersion = s.version
            s.reportedAtMs = nowMs
            return WireProtocol.stateValue(value)
        }
    }
}
