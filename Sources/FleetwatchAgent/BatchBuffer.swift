import FleetwatchProtocol
import NIOCore

/// A sealed batch: sequenced, compressed, encoded as a frame, waiting for the hub's ack.
public struct SealedBatch: Sendable, Equatable {
    public let epoch: UInt64
    public let sequence: UInt64
    public let sampleCount: Int
    /// The whole encoded batch frame, self-contained: what the spool keeps and what protocols 1 and 2 send.
    public let frame: ByteBuffer
    /// The samples, for a protocol-3 connection to code against what it sent before. Nil for a batch recovered
    /// from the spool, and for one more than `BatchBuffer.payloadsKept` batches behind the newest: it travels as
    /// `frame`.
    public internal(set) var payload: BatchPayload?

    public init(epoch: UInt64, sequence: UInt64, sampleCount: Int, frame: ByteBuffer, payload: BatchPayload? = nil) {
        self.epoch = epoch
        self.sequence = sequence
        self.sampleCount = sampleCount
        self.frame = frame
        self.payload = payload
    }
}

/// The agent's bounded store of samples not yet acknowledged. Pure: no I/O, no clock.
///
/// Samples collect in `pending` until sealed into a sequenced batch. Sealed batches stay until the hub
/// acknowledges them and are sent again after every reconnect. When samples exceed `capacity`, the oldest
/// sealed batch is dropped whole (then the oldest pending samples) and counted in `droppedSamples`.
public struct BatchBuffer: Sendable {
    /// Sizes. Every field has a default.
    public struct Configuration: Sendable, Equatable {
        /// Most samples held (pending and sealed) before the oldest are dropped.
        public var capacity: Int
        /// Most samples in one batch.
        public var maxBatchSamples: Int
        public init(capacity: Int = 500_000, maxBatchSamples: Int = 1_000) {
            self.capacity = max(capacity, 1)
            self.maxBatchSamples = max(maxBatchSamples, 1)
        }
    }

    public var configuration: Configuration
    /// The epoch new batches are sealed in.
    public let epoch: UInt64
    /// The sequence the next sealed batch gets.
    public private(set) var nextSequence: UInt64
    /// Samples dropped for lack of space, since the agent started.
    public private(set) var droppedSamples: Int64 = 0

    private var pending: [Series] = []
    private var pendingIndex: [String: Int] = [:]
    public private(set) var pendingCount = 0
    private var sealed: [SealedBatch] = []
    private var head = 0
    /// How many batches from the head have been sent on the current connection.
    public private(set) var sentCount = 0
    /// How many batches from the head have been sent on any connection (a sent batch may be stored already
    /// although its ack never arrived: such batches are the last to be dropped for space, so that the count
    /// of dropped samples stays exact while the buffer holds any batch never sent).
    public private(set) var everSentCount = 0
    public private(set) var sealedSamples = 0

    /// How many of the newest sealed batches keep their samples for delta coding (the rest keep only their
    /// compressed frame, about 2 bytes a sample, so a long outage costs no more memory than before protocol 3).
    public static let payloadsKept = 64

    public init(epoch: UInt64, configuration: Configuration = .init(), firstSequence: UInt64 = 1) {
        self.epoch = epoch
        self.configuration = configuration
        self.nextSequence = firstSequence
    }

    /// Samples held, pending and sealed.
    public var bufferedSamples: Int { pendingCount + sealedSamples }
    /// Sealed batches waiting for an ack.
    public var unackedBatches: ArraySlice<SealedBatch> { sealed[head...] }
    /// Highest sequence of this epoch acknowledged so far (0: none).
    public private(set) var lastAckedSequence: UInt64 = 0

    /// Adds samples. Returns batches sealed because pending reached `maxBatchSamples`, and batches
    /// dropped to stay within capacity (for the spool to follow).
    public mutating func append(_ series: [Series]) -> (sealed: [SealedBatch], dropped: [SealedBatch]) {
        for s in series where s.count > 0 {
            if let i = pendingIndex[s.name], pending[i].kind == s.kind {
                pending[i].timestamps += s.timestamps
                pending[i].values += s.values
                pending[i].states += s.states
            } else {
                pendingIndex[s.name] = pending.count
                pending.append(s)
            }
            pendingCount += s.count
        }
        var newlySealed: [SealedBatch] = []
        while pendingCount >= configuration.maxBatchSamples, let b = seal() {
            newlySealed.append(b)
        }
        return (newlySealed, enforceCapacity())
    }

    /// Seals up to `maxBatchSamples` pending samples into the next batch, or returns nil if none are pending.
    public mutating func seal() -> SealedBatch? {
        guard pendingCount > 0 else { return nil }
        var take: [Series] = []
        var budget = configuration.maxBatchSamples
        var rest: [Series] = []
        for s in pending {
            if budget == 0 { rest.append(s); continue }
            if s.count <= budget {
                take.append(s)
                budget -= s.count
            } else {
                take.append(Self.slice(s, 0..<budget))
                rest.append(Self.slice(s, budget..<s.count))
                budget = 0
            }
        }
        pending = rest
        pendingIndex = Dictionary(uniqueKeysWithValues: rest.enumerated().map { ($1.name, $0) })
        let payload = BatchPayload(series: take)
        let count = payload.sampleCount
        pendingCount -= count
        guard let frame = try? BatchFrame.make(bootEpoch: epoch, sequence: nextSequence, payload: payload) else {
            droppedSamples += Int64(count)
            return nil
        }
        let batch = SealedBatch(epoch: epoch, sequence: nextSequence, sampleCount: count,
                                frame: Frame.batch(frame).encoded(), payload: payload)
        nextSequence += 1
        sealed.append(batch)
        sealedSamples += count
        let old = sealed.count - 1 - Self.payloadsKept
        if old >= head, sealed[old].payload != nil { sealed[old].payload = nil }
        return batch
    }

    /// Puts back a batch recovered from the spool (any epoch), oldest first.
    public mutating func restore(_ batch: SealedBatch) -> [SealedBatch] {
        sealed.append(batch)
        sealedSamples += batch.sampleCount
        return enforceCapacity()
    }

    /// Marks up to `limit` unsent batches as sent and returns them, oldest first.
    public mutating func nextToSend(limit: Int) -> [SealedBatch] {
        let start = head + sentCount
        let end = min(sealed.count, head + limit)
        guard start < end else { return [] }
        sentCount += end - start
        everSentCount = max(everSentCount, sentCount)
        return Array(sealed[start..<end])
    }

    /// Removes every batch of `epoch` up to `sequence` and returns the removed batches.
    public mutating func acknowledge(epoch: UInt64, sequence: UInt64) -> [SealedBatch] {
        var removed: [SealedBatch] = []
        while head < sealed.count, sealed[head].epoch == epoch, sealed[head].sequence <= sequence {
            removed.append(sealed[head])
            sealedSamples -= sealed[head].sampleCount
            head += 1
            sentCount = max(sentCount - 1, 0)
            everSentCount = max(everSentCount - 1, 0)
        }
        if epoch == self.epoch { lastAckedSequence = max(lastAckedSequence, sequence) }
        compact()
        return removed
    }

    /// The connection ended: everything unacked is sent again on the next one.
    public mutating func connectionLost() {
        sentCount = 0
    }

    /// Drops the oldest unacked batch, which the hub refused for good (too large or corrupt).
    public mutating func dropOldest() -> SealedBatch? {
        guard head < sealed.count else { return nil }
        let b = sealed[head]
        head += 1
        sealedSamples -= b.sampleCount
        droppedSamples += Int64(b.sampleCount)
        sentCount = max(sentCount - 1, 0)
        everSentCount = max(everSentCount - 1, 0)
        compact()
        return b
    }

    /// Drops one batch (the hub can never accept it) and counts its samples as dropped.
    public mutating func drop(epoch: UInt64, sequence: UInt64) -> SealedBatch? {
        guard let i = sealed[head...].firstIndex(where: { $0.epoch == epoch && $0.sequence == sequence }) else { return nil }
        let b = sealed.remove(at: i)
        if i < head + sentCount { sentCount -= 1 }
        if i < head + everSentCount { everSentCount -= 1 }
        sealedSamples -= b.sampleCount
        droppedSamples += Int64(b.sampleCount)
        return b
    }

    private mutating func enforceCapacity() -> [SealedBatch] {
        var dropped: [SealedBatch] = []
        while bufferedSamples > configuration.capacity {
            if head < sealed.count {
                // Prefer the oldest batch never sent; a batch sent (on this connection or one that was cut
                // before its ack arrived) may be stored already.
                let victim = everSentCount < sealed.count - head ? head + everSentCount : head
                let b = sealed.remove(at: victim)
                if victim < head + sentCount { sentCount -= 1 }
                if victim < head + everSentCount { everSentCount -= 1 }
                sealedSamples -= b.sampleCount
                droppedSamples += Int64(b.sampleCount)
                dropped.append(b)
            } else {
                let excess = bufferedSamples - configuration.capacity
                dropOldestPending(excess)
            }
        }
        return dropped
    }

    private mutating func dropOldestPending(_ n: Int) {
        var remaining = n
        var i = 0
        while remaining > 0, i < pending.count {
            let cut = min(remaining, pending[i].count)
            pending[i] = Self.slice(pending[i], cut..<pending[i].count)
            remaining -= cut
            pendingCount -= cut
            droppedSamples += Int64(cut)
            i += 1
        }
        pending.removeAll { $0.count == 0 }
        pendingIndex = Dictionary(uniqueKeysWithValues: pending.enumerated().map { ($1.name, $0) })
    }

    private mutating func compact() {
        if head > 1024, head * 2 > sealed.count {
            sealed.removeFirst(head)
            head = 0
        } else if head == sealed.count {
            sealed.removeAll(keepingCapacity: true)
            head = 0
        }
    }

    static func slice(_ s: Series, _ r: Range<Int>) -> Series {
        Series(name: s.name, kind: s.kind, timestamps: Array(s.timestamps[r]),
               values: s.values.isEmpty ? [] : Array(s.values[r]),
               states: s.states.isEmpty ? [] : Array(s.states[r]))
    }
}
