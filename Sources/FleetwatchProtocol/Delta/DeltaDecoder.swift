import NIOCore

/// A delta batch read back: its identity and samples.
public struct DecodedDeltaBatch: Equatable, Sendable {
    public var bootEpoch: UInt64
    public var sequence: UInt64
    public var payload: BatchPayload
}

/// The hub's side of protocol 3's delta batches: reads each against what the connection sent before, in the
/// order they arrived, and remembers it for the next. One decoder per connection. After an error the
/// connection must close: the decoder refuses everything after it. See docs/protocol.md §11.
public struct DeltaDecoder: Sendable {
    private var context = DeltaContext()
    private var failed = false

    public init() {}

    /// Metrics this connection has defined so far.
    public var definedMetrics: Int { context.entries.count }

    /// Decodes `frame`, enforcing `limits` before allocating, and moves the connection's context past it.
    public mutating func decode(_ frame: DeltaBatchFrame, limits: BatchLimits) throws -> DecodedDeltaBatch {
        guard !failed else { throw WireError(.corruptPayload, "an earlier delta batch of this connection was refused") }
        do {
            return try decodeChecked(frame, limits: limits)
        } catch {
            failed = true
            throw error
        }
    }

    private mutating func decodeChecked(_ frame: DeltaBatchFrame, limits: BatchLimits) throws -> DecodedDeltaBatch {
        var body = frame.body
        let flags = try body.readLE(UInt8.self, "delta batch flags")
        guard flags & ~DeltaContext.Flags.known == 0 else {
            throw WireError(.invalidField, "delta batch flags 0x\(String(flags, radix: 16)) hold unknown bits")
        }
        let epoch: UInt64
        if flags & DeltaContext.Flags.epoch != 0 {
            epoch = try body.readVarint("epoch")
            guard epoch <= UInt64(Int64.max) else { throw WireError(.invalidField, "epoch above 2^63") }
        } else {
            guard let previous = context.epoch else {
                throw WireError(.invalidField, "the connection's first delta batch must carry its epoch")
            }
            epoch = previous
        }
        let reference = flags & DeltaContext.Flags.epoch != 0 ? 0 : Int64(context.sequence)
        let (sequence, overflow) = reference.addingReportingOverflow(Zigzag.decode(try body.readVarint("sequence")))
        guard !overflow, sequence >= 1 else { throw WireError(.invalidField, "delta batch sequence out of range") }
        let sampleCount = try body.readVarint("sample count")
        guard sampleCount <= UInt64(limits.maxSamples) else {
            throw WireError(.limitExceeded, "batch declares \(sampleCount) samples, the limit is \(limits.maxSamples)")
        }
        let raw: ByteBuffer
        if flags & DeltaContext.Flags.compressed != 0 {
            let length = try body.readVarint("raw length")
            guard length <= UInt64(limits.maxPayloadBytes) else {
                throw WireError(.payloadTooLarge, "batch declares \(length) inflated bytes, the limit is \(limits.maxPayloadBytes)")
            }
            raw = try Zlib.decompress(body, exactLength: Int(length))
        } else {
            guard body.readableBytes <= limits.maxPayloadBytes else {
                throw WireError(.payloadTooLarge, "batch of \(body.readableBytes) bytes, the limit is \(limits.maxPayloadBytes)")
            }
            raw = body
        }
        let payload = try raw.withUnsafeReadableBytes { bytes in
            var r = WireReader(bytes)
            return try decodePayload(&r, sampleCount: Int(sampleCount), limits: limits)
        }
        context.epoch = epoch
        context.sequence = UInt64(sequence)
        return DecodedDeltaBatch(bootEpoch: epoch, sequence: UInt64(sequence), payload: payload)
    }

    private mutating func decodePayload(_ r: inout WireReader, sampleCount: Int, limits: BatchLimits) throws -> BatchPayload {
        let (base, overflow) = context.base.addingReportingOverflow(Zigzag.decode(try r.varint("base timestamp")))
        guard !overflow, base >= 0 else { throw WireError(.invalidField, "base timestamp out of range") }
        context.batches += 1
        let list = try readList(&r, limits: limits)
        var counts = [Int](repeating: 1, count: list.count)
        if sampleCount != list.count {
            guard sampleCount > list.count else {
                throw WireError(.corruptPayload, "batch declares \(sampleCount) samples in \(list.count) series")
            }
            var total = 0
            for i in counts.indices {
                let n = try r.varint("sample count")
                guard n >= 1, n <= UInt64(sampleCount - total), n <= UInt64(r.remaining) else {
                    throw WireError(.limitExceeded, "series \(context.entries[list[i]].name) claims \(n) samples; too many for this batch")
                }
                counts[i] = Int(n)
                total += Int(n)
            }
            guard total == sampleCount else {
                throw WireError(.corruptPayload, "batch declares \(sampleCount) samples but holds \(total)")
            }
        }
        try readChanges(&r, list: list)
        // Every series' timestamps go into one buffer and every numeric series' values into another; each series
        // is then given its part of them (two allocations per batch, not two per metric).
        var numericSamples = 0
        for (position, id) in list.enumerated() where context.entries[id].kind != .state { numericSamples += counts[position] }
        var buffers = BatchSampleBuffers(samples: sampleCount, numericSamples: numericSamples)
        var series: [Series] = []
        series.reserveCapacity(list.count)
        for (position, id) in list.enumerated() {
            series.append(try readSeries(&r, id: id, count: counts[position], base: base, into: &buffers))
        }
        if r.remaining > 0 { throw WireError(.trailingBytes, "\(r.remaining) bytes after the last series") }
        // Numeric series get values: `readChanges` lets only state metrics use the state dictionary.
        buffers.share(with: &series, counts: counts)
        context.base = base
        context.previousList = list
        context.hasPrevious = true
        return BatchPayload(series: series)
    }

    /// The batch's metrics: the previous batch's list, or a new one that may define metrics.
    private mutating func readList(_ r: inout WireReader, limits: BatchLimits) throws -> [Int] {
        let header = try r.varint("series list")
        if header == 0 {
            guard context.hasPrevious else { throw WireError(.invalidField, "no earlier delta batch to repeat the series of") }
            return context.previousList
        }
        let count = header - 1
        guard count <= UInt64(limits.maxSeries) else {
            throw WireError(.limitExceeded, "batch has \(count) series, the limit is \(limits.maxSeries)")
        }
        guard count <= UInt64(r.remaining) else { throw WireError(.truncated, "payload ends inside the series list") }
        var list: [Int] = []
        list.reserveCapacity(Int(count))
        for _ in 0..<count {
            let ref = try r.varint("metric reference")
            let id: Int
            if ref == 0 {
                let name = try r.string(maxBytes: WireProtocol.maxMetricNameBytes, "metric name")
                guard WireProtocol.isValidName(name, maxBytes: WireProtocol.maxMetricNameBytes) else {
                    throw WireError(.invalidField, "metric name must be 1–128 characters of A–Z a–z 0–9 _ . : - /")
                }
                let rawKind = try r.byte("metric kind")
                guard let kind = MetricKind(rawValue: rawKind) else {
                    throw WireError(.invalidField, "metric kind \(rawKind) of \(name) is unknown")
                }
                guard context.entries.count < DeltaContext.Limits.maxMetrics else {
                    throw WireError(.limitExceeded, "a connection may define at most \(DeltaContext.Limits.maxMetrics) metrics")
                }
                id = context.entries.count
                context.entries.append(.init(name: name, kind: kind))
            } else {
                guard ref <= UInt64(context.entries.count) else {
                    throw WireError(.invalidField, "metric reference \(ref) was never defined on this connection")
                }
                id = Int(ref - 1)
            }
            guard context.entries[id].lastBatch != context.batches else {
                throw WireError(.invalidField, "metric \(context.entries[id].name) appears twice in one batch")
            }
            context.entries[id].lastBatch = context.batches
            list.append(id)
        }
        return list
    }

    private mutating func readChanges(_ r: inout WireReader, list: [Int]) throws {
        let changes = try r.varint("encoding changes")
        guard changes <= UInt64(list.count) else { throw WireError(.invalidField, "\(changes) encoding changes for \(list.count) series") }
        var lastPosition = -1
        for _ in 0..<changes {
            let position = try r.varint("series position")
            guard position < UInt64(list.count), Int(position) > lastPosition else {
                throw WireError(.invalidField, "encoding change for series \(position): out of range or out of order")
            }
            lastPosition = Int(position)
            let id = list[Int(position)]
            let rawEncoding = try r.byte("value encoding")
            let kind = context.entries[id].kind
            guard let encoding = ValueEncoding(rawValue: rawEncoding), (encoding == .stateDictionary) == (kind == .state) else {
                throw WireError(.invalidField, "value encoding \(rawEncoding) does not fit \(kind) series \(context.entries[id].name)")
            }
            var scale: UInt8 = 0
            if encoding == .decimal {
                scale = try r.byte("decimal scale")
                guard Int(scale) < decimalPowers.count else { throw WireError(.invalidField, "decimal scale \(scale) > 9") }
            }
            context.setEncoding(id, encoding, scale: scale)
        }
    }

    /// One series' samples: its timestamps and numeric values appended to `buffers`; the series returned has its
    /// states, and its timestamps and values are set by the caller from the shared buffers.
    private mutating func readSeries(_ r: inout WireReader, id: Int, count: Int, base: Int64,
                                     into buffers: inout BatchSampleBuffers) throws -> Series {
        // The entry's fields are read one by one: a copy of the whole entry would retain its list of states too.
        let name = context.entries[id].name, kind = context.entries[id].kind
        guard let encoding = context.entries[id].encoding else {
            throw WireError(.invalidField, "series \(name) has no value encoding yet")
        }
        try r.timestamps(count, base: base, of: name, into: &buffers.timestamps)
        switch encoding {
        case .decimal:
            context.entries[id].lastMantissa = try r.decimals(count, power: decimalPowers[Int(context.entries[id].scale)],
                                                              from: context.entries[id].lastMantissa, into: &buffers.values)
            return Series(name: name, kind: kind, timestamps: Samples(), values: Samples())
        case .floatXor:
            context.entries[id].lastBits = try r.floats(count, from: context.entries[id].lastBits, of: name, into: &buffers.values)
            return Series(name: name, kind: kind, timestamps: Samples(), values: Samples())
        case .stateDictionary:
            var states = [String]()
            states.reserveCapacity(count)
            for _ in 0..<count {
                let index = try r.varint("state index")
                if index == 0 {
                    let state = try r.string(maxBytes: WireProtocol.maxStateBytes, "state")
                    states.append(state)
                    context.remember(state, for: id)
                } else {
                    guard index <= UInt64(context.entries[id].states.count) else {
                        throw WireError(.invalidField, "state index \(index) of \(name) was never sent")
                    }
                    states.append(context.entries[id].states[Int(index - 1)])
                }
            }
            return Series(name: name, kind: kind, timestamps: Samples(), values: Samples(), states: states)
        }
    }
}
