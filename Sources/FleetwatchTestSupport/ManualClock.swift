import FleetwatchProtocol
import Synchronization

/// A clock in milliseconds that tests move by hand. Shared by reference: the test advances it while the
/// component under test reads it.
public final class ManualClock: MillisecondClock {
    private let now: Mutex<Int64>
    public init(startMs: Int64 = 1_700_000_000_000) { now = Mutex(startMs) }
    public var nowMs: Int64 { now.withLock { $0 } }
    public func advance(ms: Int64) { now.withLock { $0 += ms } }
}
