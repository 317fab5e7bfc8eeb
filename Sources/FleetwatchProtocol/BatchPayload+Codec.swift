import NIOCore

/// How one series' values are packed. See `docs/protocol.md`.
enum ValueEncoding: UInt8 {
    /// Each value's IEEE-754 bits XOR the previous value's bits, 8 bytes little-endian.
    case floatXor = 0
    /// Values are integers after scaling by 10^scale; zigzag varint deltas of those integers.
    case decimal = 1
    /// A dictionary of distinct strings, then one varint index per sample.
    case stateDictionary = 2
}

@usableFromInline let decimalPowers: [Double] = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]

extension BatchPayload {
    /// Appends the uncompressed payload bytes.
    public func encode(into buffer: inout ByteBuffer) {
        let base = series.lazy.compactMap { $0.timestamps.min() }.min() ?? 0
        buffer.writeVarint(UInt64(max(base, 0)))
        buffer.writeVarint(UInt64(series.count))
        for s in series {
            buffer.writeWireString(s.name)
            buffer.writeInteger(s.kind.rawValue)
            buffer.writeVarint(UInt64(s.count))
            var previous = base
            for t in s.timestamps {
                buffer.writeZigzag(t &- previous)
                previous = t
            }
            if s.kind == .state {
                Self.encodeStates(s.states, into: &buffer)
            } else if let scale = Self.decimalScale(of: s.values) {
                buffer.writeInteger(ValueEncoding.decimal.rawValue)
                buffer.writeInteger(scale)
                let power = decimalPowers[Int(scale)]
                var previous: Int64 = 0
                for v in s.values {
                    let m = Int64((v * power).rounded())
                    buffer.writeZigzag(m &- previous)
                    previous = m
                }
            } else {
                buffer.writeInteger(ValueEncoding.floatXor.rawValue)
                var previous: UInt64 = 0
                for v in s.values {
                    buffer.writeInteger(v.bitPattern ^ previous, endianness: .little)
                    previous = v.bitPattern
                }
            }
        }
    }

    private static func encodeStates(_ states: [String], into buffer: inout ByteBuffer) {
        buffer.writeInteger(ValueEncoding.stateDictionary.rawValue)
        var dictionary: [String] = []
        var index: [String: Int] = [:]
        var indices: [Int] = []
        indices.reserveCapacity(states.count)
        for s in states {
            if let i = index[s] {
                indices.append(i)
            } else {
                index[s] = dictionary.count
                indices.append(dictionary.count)
                dictionary.append(s)
            }
        }
        buffer.writeVarint(UInt64(dictionary.count))
        for s in dictionary { buffer.writeWireString(s) }
        for i in indices { buffer.writeVarint(UInt64(i)) }
    }

    /// The smallest scale 0…9 at which every value is an exact integer below 2^53, or nil.
    static func decimalScale(of values: Samples<Double>) -> UInt8? {
        for k in decimalPowers.indices where isExact(values, scale: k) { return UInt8(k) }
        return nil
    }

    /// Whether every value is an exact integer below 2^53 after scaling by 10^scale (and none is −0).
    static func isExact(_ values: Samples<Double>, scale: Int) -> Bool {
        let power = decimalPowers[scale]
        for v in values {
            let scaled = (v * power).rounded()
            guard scaled.isFinite, abs(scaled) <= 9_007_199_254_740_992, scaled / power == v,
                  v != 0 || v.sign == .plus
            else { return false }
        }
        return true
    }

    /// Decodes an uncompressed payload, enforcing `limits` before allocating.
    public static func decode(_ buffer: ByteBuffer, limits: BatchLimits) throws -> BatchPayload {
        try buffer.withUnsafeReadableBytes { raw in
            var r = WireReader(raw)
            let base = try r.varint("base timestamp")
            guard base <= UInt64(Int64.max) else { throw WireError(.invalidField, "base timestamp out of range") }
            let seriesCount = try r.varint("series count")
            guard seriesCount <= UInt64(limits.maxSeries) else {
                throw WireError(.limitExceeded, "batch has \(seriesCount) series, the limit is \(limits.maxSeries)")
            }
            var remaining = limits.maxSamples
            // Every series' samples go into two shared buffers (BatchSampleBuffers). The payload does not declare its
            // sample count: they start with room for one sample per series (a one-second batch) and grow as arrays do
            // (a batch of several samples a series may keep up to twice the room it needs, while its series live).
            // Each series takes several bytes, so a short payload cannot make the hub reserve much.
            let reserved = Int(min(seriesCount, UInt64(r.remaining)))
            var buffers = BatchSampleBuffers(samples: reserved, numericSamples: reserved)
            var series: [Series] = [], counts: [Int] = []
            series.reserveCapacity(reserved)
            counts.reserveCapacity(reserved)
            for _ in 0..<seriesCount {
                let (s, count) = try decodeSeries(&r, base: Int64(base), remaining: &remaining, into: &buffers)
                series.append(s)
                counts.append(count)
            }
            if r.remaining > 0 {
                throw WireError(.trailingBytes, "\(r.remaining) bytes after the last series")
            }
            buffers.share(with: &series, counts: counts)
            return BatchPayload(series: series)
        }
    }

    /// One series: its timestamps and numeric values appended to `buffers` (the caller gives the series its part of
    /// them), and its sample count.
    private static func decodeSeries(_ r: inout WireReader, base: Int64, remaining: inout Int,
                                     into buffers: inout BatchSampleBuffers) throws -> (Series, Int) {
        let name = try r.string(maxBytes: WireProtocol.maxMetricNameBytes, "metric name")
        guard WireProtocol.isValidName(name, maxBytes: WireProtocol.maxMetricNameBytes) else {
            throw WireError(.invalidField, "metric name must be 1–128 characters of A–Z a–z 0–9 _ . : - /")
        }
        let rawKind = try r.byte("metric kind")
        guard let kind = MetricKind(rawValue: rawKind) else {
            throw WireError(.invalidField, "metric kind \(rawKind) of \(name) is unknown")
        }
        let count64 = try r.varint("sample count")
        guard count64 > 0, count64 <= UInt64(remaining), count64 <= UInt64(r.remaining) else {
            throw WireError(.limitExceeded, "series \(name) claims \(count64) samples; too many for this batch")
        }
        let count = Int(count64)
        remaining -= count
        try r.timestamps(count, base: base, of: name, into: &buffers.timestamps)
        let rawEncoding = try r.byte("value encoding")
        guard let encoding = ValueEncoding(rawValue: rawEncoding),
              (encoding == .stateDictionary) == (kind == .state)
        else {
            throw WireError(.invalidField, "value encoding \(rawEncoding) does not fit \(kind) series \(name)")
        }
        switch encoding {
        case .stateDictionary:
            return (Series(name: name, kind: kind, timestamps: Samples(), values: Samples(), states: try decodeStates(&r, count: count)), count)
        case .decimal:
            let scale = try r.byte("decimal scale")
            guard Int(scale) < decimalPowers.count else { throw WireError(.invalidField, "decimal scale \(scale) > 9") }
            _ = try r.decimals(count, power: decimalPowers[Int(scale)], from: 0, into: &buffers.values)
        case .floatXor:
            _ = try r.floats(count, from: 0, of: name, into: &buffers.values)
        }
        return (Series(name: name, kind: kind, timestamps: Samples(), values: Samples()), count)
    }

    private static func decodeStates(_ r: inout WireReader, count: Int) throws -> [String] {
        let size = try r.varint("state dictionary size")
        guard size > 0, size <= UInt64(count) else { throw WireError(.invalidField, "state dictionary size \(size) is invalid") }
        var dictionary: [String] = []
        dictionary.reserveCapacity(Int(size))
        for _ in 0..<size {
            dictionary.append(try r.string(maxBytes: WireProtocol.maxStateBytes, "state"))
        }
        var states = [String]()
        states.reserveCapacity(count)
        for _ in 0..<count {
            let i = try r.varint("state index")
            guard i < size else { throw WireError(.invalidField, "state index \(i) outside a dictionary of \(size)") }
            states.append(dictionary[Int(i)])
        }
        return states
    }
}
