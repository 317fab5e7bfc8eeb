/// A bounds-checked cursor over raw bytes, for the batch payload decoder's inner loops
/// (reading through `ByteBuffer` costs several checks and calls per byte).
struct WireReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    @inline(__always)
    mutating func byte(_ field: StaticString) throws -> UInt8 {
        guard position < bytes.count else { throw WireError(.truncated, "payload ends inside \(field)") }
        defer { position += 1 }
        return bytes[position]
    }

    @inline(__always)
    mutating func varint(_ field: StaticString) throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < bytes.count else { throw WireError(.truncated, "payload ends inside \(field)") }
            let b = bytes[position]
            position += 1
            if shift == 63 && b > 1 { throw WireError(.invalidField, "\(field) overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw WireError(.invalidField, "\(field) overflows 64 bits") }
        }
    }

    @inline(__always)
    mutating func uint64LE(_ field: StaticString) throws -> UInt64 {
        guard remaining >= 8 else { throw WireError(.truncated, "payload ends inside \(field)") }
        defer { position += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
    }

    mutating func string(maxBytes: Int, _ field: StaticString) throws -> String {
        let length = try varint(field)
        guard length <= UInt64(maxBytes) else {
            throw WireError(.invalidField, "\(field) is \(length) bytes, the limit is \(maxBytes)")
        }
        guard UInt64(remaining) >= length else { throw WireError(.truncated, "payload ends inside \(field)") }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + Int(length))])
        position += Int(length)
        // NUL is valid UTF-8, but PostgreSQL text cannot hold it: refused here, so it can never fail a write.
        guard !slice.contains(0), let s = String(validating: slice, as: UTF8.self) else {
            throw WireError(.invalidField, "\(field) is not valid UTF-8 without NUL characters")
        }
        return s
    }
}
