import CompressNIO
import NIOCore

/// zlib (RFC 1950) compression of batch payloads, with an exact bound on inflated size.
public enum Zlib {
    /// Compresses the readable bytes of `raw` into a new buffer.
    public static func compress(_ raw: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        var raw = raw
        return try raw.compress(with: .zlib(), allocator: allocator)
    }

    /// Inflates `compressed`, which must produce exactly `exactLength` bytes and end its stream.
    ///
    /// The output buffer is sized from `exactLength` before inflating, and the inflated length is checked
    /// afterwards, so a zip bomb costs at most that much memory whatever zlib's own bounds do.
    public static func decompress(_ compressed: ByteBuffer, exactLength: Int,
                                  allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        var input = compressed
        var output = allocator.buffer(capacity: exactLength + 1)
        do {
            let inflater = try ZlibDecompressor(algorithm: .zlib)
            try inflater.inflate(from: &input, to: &output)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw WireError(.payloadTooLarge, "batch inflates past its declared \(exactLength) bytes")
        } catch {
            throw WireError(.corruptPayload, "batch is not a valid zlib stream (\(error))")
        }
        guard output.readableBytes == exactLength else {
            if output.readableBytes > exactLength {
                throw WireError(.payloadTooLarge, "batch inflates past its declared \(exactLength) bytes")
            }
            throw WireError(.corruptPayload,
                            "batch inflates to \(output.readableBytes) bytes, \(exactLength) were declared")
        }
        guard input.readableBytes == 0 else {
            throw WireError(.trailingBytes, "\(input.readableBytes) bytes after the end of the zlib stream")
        }
        return output
    }
}
