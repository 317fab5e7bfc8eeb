import FleetwatchProtocol
import Synchronization

/// Ingest figures since the hub started: batches, samples, duplicates and closes by reason.
public final class IngestCounters: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var batchesStored: Int64 = 0
        public var samplesStored: Int64 = 0
        public var samplesRefused: Int64 = 0
        /// Of `samplesRefused`, those whose metric name was over the bot's or the fleet's name limit.
        public var samplesOverNameLimit: Int64 = 0
        public var duplicates: Int64 = 0
        /// Batches received while PostgreSQL was unreachable: evaluated, not stored, not acknowledged.
        public var deferred: Int64 = 0
        public var closes: [UInt16: Int64] = [:]
        public init() {}
    }
    private let state = Mutex(Snapshot())
    /// The observer sits in a class box: a closure kept directly in a `Mutex` is reabstracted on every
    /// `inout` access, and the thunks pile up (each store got slower and the hub's memory grew).
    private final class Observer: Sendable {
        let call: @Sendable (Duration) -> Void
        init(_ call: @escaping @Sendable (Duration) -> Void) { self.call = call }
    }
    private let storeObserver = Mutex<Observer?>(nil)

    public init() {}

    /// Called with the duration of every batch store (the database round trip of ingest).
    public func observeStoreDurations(_ observer: @escaping @Sendable (Duration) -> Void) {
        let box = Observer(observer)
        storeObserver.withLock { $0 = box }
    }

    /// Reports one store's duration to the observer.
    public func storeTook(_ duration: Duration) {
        let box = storeObserver.withLock { $0 }
        box?.call(duration)
    }

    func stored(batch: ValidatedBatch) {
        state.withLock {
            $0.batchesStored += 1
            $0.samplesStored += Int64(batch.storedSamples)
            $0.samplesRefused += Int64(batch.refusedSamples)
            $0.samplesOverNameLimit += Int64(batch.overLimitSamples)
        }
        storeSucceeded()
    }

    func duplicate() {
        state.withLock { $0.duplicates += 1 }
        storeSucceeded()
    }

    func deferred() {
        state.withLock { $0.deferred += 1 }
        storeFailed()
    }

    /// When the last store succeeded and failed (monotonic nanoseconds since the hub started), for readiness.
    private let storeHealth = Mutex<(lastSuccess: ContinuousClock.Instant?, lastFailure: ContinuousClock.Instant?)>((nil, nil))

    func storeSucceeded() { storeHealth.withLock { $0.lastSuccess = .now } }

    func storeFailed() { storeHealth.withLock { $0.lastFailure = .now } }

    /// Whether batches could not be stored lately: a store failed within `window` and none succeeded since.
    public func storeFailing(within window: Duration) -> Bool {
        let (success, failure) = storeHealth.withLock { $0 }
        guard let failure, ContinuousClock.now - failure < window else { return false }
        return success.map { $0 < failure } ?? true
    }

    public func count(_ code: CloseCode) { state.withLock { $0.closes[code.rawValue, default: 0] += 1 } }

    public var snapshot: Snapshot { state.withLock { $0 } }
}
