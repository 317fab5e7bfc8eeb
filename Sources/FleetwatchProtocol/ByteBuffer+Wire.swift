import NIOCore

/// Little-endian fixed-width integers, LEB128 varints and length-prefixed strings on `ByteBuffer`.
extension ByteBuffer {
    /// Appends `value` as an unsigned LEB128 varint (1–10 bytes).
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            self.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        self.writeInteger(UInt8(truncatingIfNeeded: v))
    }

    /// Appends a signed value zigzag-encoded as a varint.
    @inlinable
    public mutating func writeZigzag(_ value: Int64) {
        writeVarint(Zigzag.encode(value))
    }

    /// Appends a varint byte count then the UTF-8 bytes of `string`.
    @inlinable
    /// NUL characters are left out: the protocol refuses them (PostgreSQL text cannot hold them).
    public mutating func writeWireString(_ string: String) {
        let clean = string.utf8.contains(0) ? String(string.unicodeScalars.filter { $0 != "\u{0}" }) : string
        writeVarint(UInt64(clean.utf8.count))
        writeString(clean)
    }

    /// Reads a little-endian fixed-width integer or throws `truncated`.
    @inlinable
    public mutating func readLE<T: FixedWidthInteger>(_ type: T.Type, _ field: StaticString) throws -> T {
        guard let value = readInteger(endianness: .little, as: T.self) else {
            throw WireError(.truncated, "frame ends inside \(field)")
        }
        return value
    }

    /// Reads an unsigned LEB128 varint or throws.
    public mutating func readVarint(_ field: StaticString) throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let byte = readInteger(as: UInt8.self) else {
                throw WireError(.truncated, "frame ends inside \(field)")
            }
            if shift == 63 && byte > 1 {
                throw WireError(.invalidField, "\(field) overflows 64 bits")
            }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw WireError(.invalidField, "\(field) overflows 64 bits") }
        }
    }

    /// Reads a varint-prefixed UTF-8 string of at most `maxBytes` bytes.
    public mutating func readWireString(maxBytes: Int, _ field: StaticString) throws -> String {
        let length = try readVarint(field)
        guard length <= UInt64(maxBytes) else {
            throw WireError(.invalidField, "\(field) is \(length) bytes, the limit is \(maxBytes)")
        }
        guard let bytes = readSlice(length: Int(length)) else {
            throw WireError(.truncated, "frame ends inside \(field)")
        }
        guard !bytes.readableBytesView.contains(0),
              let string = bytes.getString(at: bytes.readerIndex, length: bytes.readableBytes),
              string.utf8.count == Int(length)
        else {
            throw WireError(.invalidField, "\(field) is not valid UTF-8 without NUL characters")
        }
        return string
    }
}

/// Zigzag mapping of signed to unsigned integers, so small negative deltas stay small varints.
public enum Zigzag {
    @inlinable
    public static func encode(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    @inlinable
    public static func decode(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }
}
