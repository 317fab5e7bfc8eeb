import NIOCore

/// The first byte of every binary WebSocket message.
public enum FrameType: UInt8, Sendable, CaseIterable {
    case hello = 0x01
    case welcome = 0x02
    case batch = 0x03
    case ack = 0x04
    case heartbeat = 0x05
    case command = 0x06
    case commandResult = 0x07
    case emergencyDeclaration = 0x08
    /// Protocol 3 only: a batch coded against the connection's earlier delta batches.
    case deltaBatch = 0x09
}

/// One binary WebSocket message.
public enum Frame: Equatable, Sendable {
    case hello(Hello)
    case welcome(Welcome)
    case batch(BatchFrame)
    case ack(Ack)
    case heartbeat(Heartbeat)
    case command(CommandFrame)
    case commandResult(CommandResultFrame)
    case emergencyDeclaration(EmergencyDeclaration)
    case deltaBatch(DeltaBatchFrame)

    /// The frame's type byte.
    public var type: FrameType {
        switch self {
        case .hello: return .hello
        case .welcome: return .welcome
        case .batch: return .batch
        case .ack: return .ack
        case .heartbeat: return .heartbeat
        case .command: return .command
        case .commandResult: return .commandResult
        case .emergencyDeclaration: return .emergencyDeclaration
        case .deltaBatch: return .deltaBatch
        }
    }

    /// Appends the frame's bytes, type byte first.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(type.rawValue)
        switch self {
        case .hello(let f): f.encodeBody(into: &buffer)
        case .welcome(let f): f.encodeBody(into: &buffer)
        case .batch(let f): f.encodeBody(into: &buffer)
        case .ack(let f): f.encodeBody(into: &buffer)
        case .heartbeat(let f): f.encodeBody(into: &buffer)
        case .command(let f): f.encodeBody(into: &buffer)
        case .commandResult(let f): f.encodeBody(into: &buffer)
        case .emergencyDeclaration(let f): f.encodeBody(into: &buffer)
        case .deltaBatch(let f): var body = f.body; buffer.writeBuffer(&body)
        }
    }

    /// The frame as a new buffer.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        encode(into: &buffer)
        return buffer
    }

    /// Decodes exactly one frame from the whole of `buffer`; trailing bytes are an error.
    /// A batch keeps its compressed payload undecoded (see `BatchFrame.inflate`).
    public static func decode(_ buffer: ByteBuffer, maxFrameBytes: Int = .max) throws -> Frame {
        guard buffer.readableBytes <= maxFrameBytes else {
            throw WireError(.frameTooLarge, "frame of \(buffer.readableBytes) bytes exceeds the limit of \(maxFrameBytes)")
        }
        var buffer = buffer
        let typeByte = try buffer.readLE(UInt8.self, "frame type")
        guard let type = FrameType(rawValue: typeByte) else {
            throw WireError(.unknownFrameType, "unknown frame type 0x\(String(typeByte, radix: 16))")
        }
        let frame: Frame
        switch type {
        case .hello: frame = .hello(try Hello(body: &buffer))
        case .welcome: frame = .welcome(try Welcome(body: &buffer))
        case .batch: frame = .batch(try BatchFrame(body: &buffer))
        case .ack: frame = .ack(try Ack(body: &buffer))
        case .heartbeat: frame = .heartbeat(try Heartbeat(body: &buffer))
        case .command: frame = .command(try CommandFrame(body: &buffer))
        case .commandResult: frame = .commandResult(try CommandResultFrame(body: &buffer))
        case .emergencyDeclaration: frame = .emergencyDeclaration(try EmergencyDeclaration(body: &buffer))
        case .deltaBatch: frame = .deltaBatch(DeltaBatchFrame(body: buffer.readSlice(length: buffer.readableBytes)!))
        }
        if type != .batch, type != .deltaBatch, buffer.readableBytes > 0 {
            throw WireError(.trailingBytes, "\(buffer.readableBytes) bytes after a \(type) frame")
        }
        return frame
    }
}
