import NIOCore

/// A sequenced, zlib-compressed batch of samples as it travels on the wire.
///
/// The payload stays compressed until `inflate` so a hub can check sizes before spending memory.
public struct BatchFrame: Equatable, Sendable {
    /// The agent run the batch belongs to.
    public var bootEpoch: UInt64
    /// Rises by one per batch within an epoch, starting at 1.
    public var sequence: UInt64
    /// Samples in the payload, declared by the agent and checked on decode.
    public var sampleCount: UInt32
    /// Byte length of the inflated payload, declared by the agent and checked on inflate.
    public var rawLength: UInt32
    /// The zlib (RFC 1950) stream.
    public var compressed: ByteBuffer

    public init(bootEpoch: UInt64, sequence: UInt64, sampleCount: UInt32, rawLength: UInt32, compressed: ByteBuffer) {
        self.bootEpoch = bootEpoch
        self.sequence = sequence
        self.sampleCount = sampleCount
        self.rawLength = rawLength
        self.compressed = compressed
    }

    /// Encodes and compresses `payload` into a batch.
    public static func make(bootEpoch: UInt64, sequence: UInt64, payload: BatchPayload,
                            allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> BatchFrame {
        var raw = allocator.buffer(capacity: 64 + payload.sampleCount * 4)
        payload.encode(into: &raw)
        let compressed = try Zlib.compress(raw, allocator: allocator)
        return BatchFrame(bootEpoch: bootEpoch, sequence: sequence, sampleCount: UInt32(payload.sampleCount),
                          rawLength: UInt32(raw.readableBytes), compressed: compressed)
    }

    /// Checks the declared sizes against `limits`, inflates exactly `rawLength` bytes and decodes the samples.
    public func inflate(limits: BatchLimits) throws -> BatchPayload {
        guard Int(rawLength) <= limits.maxPayloadBytes else {
            throw WireError(.payloadTooLarge,
                            "batch declares \(rawLength) inflated bytes, the limit is \(limits.maxPayloadBytes)")
        }
        guard Int(sampleCount) <= limits.maxSamples else {
            throw WireError(.limitExceeded, "batch declares \(sampleCount) samples, the limit is \(limits.maxSamples)")
        }
        let raw = try Zlib.decompress(compressed, exactLength: Int(rawLength))
        let payload = try BatchPayload.decode(raw, limits: limits)
        guard payload.sampleCount == Int(sampleCount) else {
            throw WireError(.corruptPayload,
                            "batch declares \(sampleCount) samples but holds \(payload.sampleCount)")
        }
        return payload
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeInteger(bootEpoch, endianness: .little)
        buffer.writeInteger(sequence, endianness: .little)
        buffer.writeInteger(sampleCount, endianness: .little)
        buffer.writeInteger(rawLength, endianness: .little)
        var compressed = compressed
        buffer.writeBuffer(&compressed)
    }

    init(body buffer: inout ByteBuffer) throws {
        bootEpoch = try buffer.readLE(UInt64.self, "boot epoch")
        sequence = try buffer.readLE(UInt64.self, "sequence")
        guard sequence > 0 else { throw WireError(.invalidField, "batch sequence must start at 1") }
        sampleCount = try buffer.readLE(UInt32.self, "sample count")
        rawLength = try buffer.readLE(UInt32.self, "raw length")
        compressed = buffer.readSlice(length: buffer.readableBytes)!
    }
}

/// Limits a hub applies to each batch. Every field has a default.
public struct BatchLimits: Sendable, Equatable {
    /// Largest inflated payload, in bytes.
    public var maxPayloadBytes: Int
    /// Most samples in one batch.
    public var maxSamples: Int
    /// Most series (distinct metrics) in one batch.
    public var maxSeries: Int

    public init(maxPayloadBytes: Int = 4 << 20, maxSamples: Int = 20_000, maxSeries: Int = 2_000) {
        self.maxPayloadBytes = maxPayloadBytes
        self.maxSamples = maxSamples
        self.maxSeries = maxSeries
    }
}
