import NIOCore

/// The hub's acknowledgement: every batch of `bootEpoch` up to `sequence` that this connection sent is stored.
///
/// Protocol v2 adds what the hub refused of the batch (`refusedSamples`, `refusals`): the v2 ack is 23 bytes,
/// the v1 ack 18. The hub sends the v2 form only on connections whose hello spoke v2.
public struct Ack: Equatable, Sendable {
    /// Whether the acknowledged batch was stored now or had been stored before.
    public enum Outcome: UInt8, Sendable {
        case stored = 0
        case duplicate = 1
    }
    /// Why samples of the batch were not stored (v2).
    public struct Refusals: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// A non-finite value or a timestamp outside the accepted window.
        public static let invalidValue = Refusals(rawValue: 1 << 0)
        /// The metric name was over the bot's (or the fleet's) limit of distinct names.
        public static let metricNameLimit = Refusals(rawValue: 1 << 1)
    }
    public var bootEpoch: UInt64
    public var sequence: UInt64
    public var outcome: Outcome
    /// Samples of this batch the hub did not store; nil: a v1 ack (which does not say).
    public var refusedSamples: UInt32?
    /// Why; empty when nothing was refused.
    public var refusals: Refusals

    public init(bootEpoch: UInt64, sequence: UInt64, outcome: Outcome, refusedSamples: UInt32? = nil,
                refusals: Refusals = []) {
        self.bootEpoch = bootEpoch
        self.sequence = sequence
        self.outcome = outcome
        self.refusedSamples = refusedSamples
        self.refusals = refusals
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeInteger(bootEpoch, endianness: .little)
        buffer.writeInteger(sequence, endianness: .little)
        buffer.writeInteger(outcome.rawValue)
        if let refusedSamples {
            buffer.writeInteger(refusedSamples, endianness: .little)
            buffer.writeInteger(refusals.rawValue)
        }
    }

    init(body buffer: inout ByteBuffer) throws {
        bootEpoch = try buffer.readLE(UInt64.self, "boot epoch")
        sequence = try buffer.readLE(UInt64.self, "sequence")
        let raw = try buffer.readLE(UInt8.self, "ack outcome")
        guard let outcome = Outcome(rawValue: raw) else {
            throw WireError(.invalidField, "ack outcome \(raw) is not 0 or 1")
        }
        self.outcome = outcome
        if buffer.readableBytes > 0 {
            refusedSamples = try buffer.readLE(UInt32.self, "refused samples")
            refusals = Refusals(rawValue: try buffer.readLE(UInt8.self, "refusal reasons"))
        } else {
            refusedSamples = nil
            refusals = []
        }
    }
}

/// Sent both ways every heartbeat interval; silence for two intervals closes the connection.
public struct Heartbeat: Equatable, Sendable {
    /// The sender's wall clock, unix milliseconds.
    public var sentAtMs: UInt64

    public init(sentAtMs: UInt64) { self.sentAtMs = sentAtMs }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeInteger(sentAtMs, endianness: .little)
    }

    init(body buffer: inout ByteBuffer) throws {
        sentAtMs = try buffer.readLE(UInt64.self, "heartbeat time")
    }
}
