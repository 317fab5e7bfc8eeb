import NIOCore

/// A protocol-3 batch coded against what earlier delta batches of the same connection sent (docs/protocol.md
/// §11). Its body cannot be read without that connection's `DeltaContext`, so it travels opaque until a
/// `DeltaDecoder` reads it.
public struct DeltaBatchFrame: Equatable, Sendable {
    /// Everything after the type byte.
    public var body: ByteBuffer

    public init(body: ByteBuffer) { self.body = body }

    /// What the header declares, read without the connection's context: the sample count and, when the payload
    /// is compressed, its inflated length (for the hub's byte-rate accounting before decoding). Nil when the
    /// header is malformed (decoding will say why).
    public static func declaredSizes(ofMessage message: ByteBuffer) -> (samples: UInt64, rawLength: UInt64?)? {
        var b = message
        guard b.readInteger(as: UInt8.self) == FrameType.deltaBatch.rawValue, let flags = b.readInteger(as: UInt8.self),
              flags & ~DeltaContext.Flags.known == 0 else { return nil }
        if flags & DeltaContext.Flags.epoch != 0 { guard (try? b.readVarint("epoch")) != nil else { return nil } }
        guard (try? b.readVarint("sequence")) != nil, let samples = try? b.readVarint("sample count") else { return nil }
        guard flags & DeltaContext.Flags.compressed != 0 else { return (samples, nil) }
        guard let raw = try? b.readVarint("raw length") else { return nil }
        return (samples, raw)
    }
}
