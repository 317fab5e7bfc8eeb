/// What both ends of a protocol-3 connection remember from the delta batches sent on it so far: the metric
/// dictionary, each metric's value encoding and last value, the last batch's series list, epoch, sequence and
/// base time. The agent's `DeltaEncoder` and the hub's `DeltaDecoder` each keep one and move it in step, batch
/// by batch, in the order the batches travel. A new connection starts empty. See docs/protocol.md §11.
struct DeltaContext: Sendable {
    /// One metric (name and kind) the connection has defined.
    struct Entry: Sendable {
        let name: String
        let kind: MetricKind
        /// Unset until a batch sets it (a metric's first batch must).
        var encoding: ValueEncoding?
        var scale: UInt8 = 0
        /// The last decimal mantissa or float bit pattern sent: the next batch's first value is coded against it.
        var lastMantissa: Int64 = 0
        var lastBits: UInt64 = 0
        /// State strings this metric has sent, numbered from 1 in order of first sending (state metrics only).
        var states: [String] = []
        /// The number of the last batch that named this metric (a batch may name a metric once).
        var lastBatch: UInt64 = 0
    }

    var entries: [Entry] = []
    /// Ids of the previous delta batch's series, in its order.
    var previousList: [Int] = []
    var hasPrevious = false
    var epoch: UInt64?
    var sequence: UInt64 = 0
    var base: Int64 = 0
    /// State strings remembered over all metrics (bounded by `DeltaLimits.maxStateEntries`).
    var stateEntries = 0
    /// Delta batches coded or decoded so far.
    var batches: UInt64 = 0

    /// The connection-wide bounds both ends apply. They bound what one connection makes the hub remember.
    enum Limits {
        /// Metrics one connection may define (a bot with more sends the rest in self-contained batches).
        static let maxMetrics = 2_000
        /// State strings one connection's metrics remember together; later new strings travel in full each time.
        static let maxStateEntries = 256
    }

    /// Flag bits of the delta batch header.
    enum Flags {
        static let epoch: UInt8 = 0x01
        static let compressed: UInt8 = 0x02
        static let known: UInt8 = 0x03
    }

    /// A batch's payload is compressed when at least this long and zlib makes it shorter.
    static let compressFrom = 512

    /// Resets the metric's value reference after an encoding change: the next value is coded against zero.
    mutating func setEncoding(_ id: Int, _ encoding: ValueEncoding, scale: UInt8) {
        entries[id].encoding = encoding
        entries[id].scale = scale
        entries[id].lastMantissa = 0
        entries[id].lastBits = 0
    }

    /// Remembers a state string sent in full, while the connection's budget lasts.
    mutating func remember(_ state: String, for id: Int) {
        guard stateEntries < Limits.maxStateEntries else { return }
        entries[id].states.append(state)
        stateEntries += 1
    }
}
