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

/// The sample runs both batch decoders read (self-contained, §4; delta, §11): one implementation of each.
extension WireReader {
    /// `count` zigzag timestamp deltas, the first against `base`, appended to `out` (a buffer a batch's series
    /// share: BatchSampleBuffers); every timestamp must be ≥ 0.
    mutating func timestamps(_ count: Int, base: Int64, of name: String, into out: inout [Int64]) throws {
        var t = base
        for _ in 0..<count {
            let (next, overflow) = t.addingReportingOverflow(Zigzag.decode(try varint("timestamp")))
            guard !overflow, next >= 0 else { throw WireError(.invalidField, "timestamp of \(name) out of range") }
            t = next
            out.append(t)
        }
    }

    /// `count` decimal values as zigzag mantissa changes from `last`, appended to `out`; returns the last mantissa.
    mutating func decimals(_ count: Int, power: Double, from last: Int64, into out: inout [Double]) throws -> Int64 {
        var m = last
        for _ in 0..<count {
            m = m &+ Zigzag.decode(try varint("value"))
            out.append(Double(m) / power)
        }
        return m
    }

    /// `count` float values as bit patterns XOR the previous one, from `last`, appended to `out`; returns the last
    /// pattern.
    mutating func floats(_ count: Int, from last: UInt64, of name: String, into out: inout [Double]) throws -> UInt64 {
        guard remaining >= count * 8 else { throw WireError(.truncated, "payload ends inside values of \(name)") }
        var bits = last
        for _ in 0..<count {
            bits ^= try uint64LE("value")
            out.append(Double(bitPattern: bits))
        }
        return bits
    }
}
