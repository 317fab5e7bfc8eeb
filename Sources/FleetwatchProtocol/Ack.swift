import NIOCore

/// The hub's acknowledgement: every batch of `bootEpoch` up to `sequence` that this connection sent is stored.
public struct Ack: Equatable, Sendable {
    /// Whether the acknowledged batch was stored now or had been stored before.
    public enum Outcome: UInt8, Sendable {
        case stored = 0
        case duplicate = 1
    }
    public var bootEpoch: UInt64
    public var sequence: UInt64
    public var outcome: Outcome

    public init(bootEpoch: UInt64, sequence: UInt64, outcome: Outcome) {
        self.bootEpoch = bootEpoch
        self.sequence = sequence
        self.outcome = outcome
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeInteger(bootEpoch, endianness: .little)
        buffer.writeInteger(sequence, endianness: .little)
        buffer.writeInteger(outcome.rawValue)
    }

    init(body buffer: inout ByteBuffer) throws {
        bootEpoch = try buffer.readLE(UInt64.self, "boot epoch")
        sequence = try buffer.readLE(UInt64.self, "sequence")
        let raw = try buffer.readLE(UInt8.self, "ack outcome")
        guard let outcome = Outcome(rawValue: raw) else {
            throw WireError(.invalidField, "ack outcome \(raw) is not 0 or 1")
        }
        self.outcome = outcome
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
