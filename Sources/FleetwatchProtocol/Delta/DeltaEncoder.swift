import NIOCore

/// The agent's side of protocol 3's delta batches: codes each batch against what this connection sent before
/// (a metric's name travels once per connection, values travel as changes from the metric's last value).
/// One encoder per connection; a new connection starts a new one. See docs/protocol.md §11.
public struct DeltaEncoder: Sendable {
    private struct Key: Hashable, Sendable {
        let name: String
        let kind: MetricKind
    }

    private var context = DeltaContext()
    private var ids: [Key: Int] = [:]

    public init() {}

    /// Metrics this connection has defined so far.
    public var definedMetrics: Int { context.entries.count }

    /// The whole delta batch frame (type byte first) for `payload`, and the connection's context moved past it.
    /// Nil, with nothing changed, when the batch cannot be coded as a delta (it would define more metrics than a
    /// connection may, names a metric twice, or would be larger than `maxFrameBytes`): send it as a
    /// self-contained batch frame instead.
    public mutating func encode(epoch: UInt64, sequence: UInt64, payload: BatchPayload, maxFrameBytes: Int = .max,
                                allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer? {
        var c = context
        var newIDs = ids
        var list: [Int] = []
        list.reserveCapacity(payload.series.count)
        var definitions: [Int] = []   // positions in `list` that define their metric
        c.batches += 1
        for (position, s) in payload.series.enumerated() {
            let key = Key(name: s.name, kind: s.kind)
            let id: Int
            if let known = newIDs[key] {
                id = known
            } else {
                guard c.entries.count < DeltaContext.Limits.maxMetrics else { return nil }
                id = c.entries.count
                newIDs[key] = id
                c.entries.append(.init(name: s.name, kind: s.kind))
                definitions.append(position)
            }
            guard c.entries[id].lastBatch != c.batches else { return nil }   // the same metric twice
            c.entries[id].lastBatch = c.batches
            list.append(id)
        }

        var raw = allocator.buffer(capacity: 16 + payload.sampleCount * 4)
        let base = payload.series.lazy.compactMap { $0.timestamps.min() }.min() ?? 0
        raw.writeZigzag(base &- c.base)
        if c.hasPrevious, list == c.previousList {
            raw.writeVarint(0)
        } else {
            raw.writeVarint(UInt64(list.count) + 1)
            var defined = definitions.makeIterator()
            var next = defined.next()
            for (position, id) in list.enumerated() {
                if position == next {
                    raw.writeVarint(0)
                    raw.writeWireString(c.entries[id].name)
                    raw.writeInteger(c.entries[id].kind.rawValue)
                    next = defined.next()
                } else {
                    raw.writeVarint(UInt64(id) + 1)
                }
            }
        }
        let sampleCount = payload.sampleCount
        if sampleCount != list.count {
            for s in payload.series { raw.writeVarint(UInt64(s.count)) }
        }
        // Value encodings that change in this batch, then every series' samples.
        var changes: [(position: Int, encoding: ValueEncoding, scale: UInt8)] = []
        for (position, s) in payload.series.enumerated() {
            let entry = c.entries[list[position]]
            if s.kind == .state {
                if entry.encoding == nil { changes.append((position, .stateDictionary, 0)) }
            } else if entry.encoding == .decimal, BatchPayload.isExact(s.values, scale: Int(entry.scale)) {
                continue
            } else if let scale = BatchPayload.decimalScale(of: s.values) {
                changes.append((position, .decimal, scale))
            } else if entry.encoding != .floatXor {
                changes.append((position, .floatXor, 0))
            }
        }
        raw.writeVarint(UInt64(changes.count))
        for change in changes {
            raw.writeVarint(UInt64(change.position))
            raw.writeInteger(change.encoding.rawValue)
            if change.encoding == .decimal { raw.writeInteger(change.scale) }
            c.setEncoding(list[change.position], change.encoding, scale: change.scale)
        }
        for (position, s) in payload.series.enumerated() {
            let id = list[position]
            var previous = base
            for t in s.timestamps {
                raw.writeZigzag(t &- previous)
                previous = t
            }
            switch c.entries[id].encoding {
            case .decimal?:
                let power = decimalPowers[Int(c.entries[id].scale)]
                var last = c.entries[id].lastMantissa
                for v in s.values {
                    let m = Int64((v * power).rounded())
                    raw.writeZigzag(m &- last)
                    last = m
                }
                c.entries[id].lastMantissa = last
            case .floatXor?:
                var last = c.entries[id].lastBits
                for v in s.values {
                    raw.writeInteger(v.bitPattern ^ last, endianness: .little)
                    last = v.bitPattern
                }
                c.entries[id].lastBits = last
            case .stateDictionary?, nil:
                for state in s.states {
                    let clean = state.utf8.contains(0) ? String(state.unicodeScalars.filter { $0 != "\u{0}" }) : state
                    if let i = c.entries[id].states.firstIndex(of: clean) {
                        raw.writeVarint(UInt64(i) + 1)
                    } else {
                        raw.writeVarint(0)
                        raw.writeWireString(clean)
                        c.remember(clean, for: id)
                    }
                }
            }
        }

        var frame = allocator.buffer(capacity: raw.readableBytes + 32)
        frame.writeInteger(FrameType.deltaBatch.rawValue)
        let newEpoch = c.epoch != epoch
        var compressed: ByteBuffer?
        if raw.readableBytes >= DeltaContext.compressFrom, let z = try? Zlib.compress(raw, allocator: allocator),
           z.readableBytes + 4 < raw.readableBytes {
            compressed = z
        }
        frame.writeInteger((newEpoch ? DeltaContext.Flags.epoch : 0) | (compressed != nil ? DeltaContext.Flags.compressed : 0))
        if newEpoch { frame.writeVarint(epoch) }
        frame.writeZigzag(Int64(bitPattern: sequence &- (newEpoch ? 0 : c.sequence)))
        frame.writeVarint(UInt64(sampleCount))
        if var z = compressed {
            frame.writeVarint(UInt64(raw.readableBytes))
            frame.writeBuffer(&z)
        } else {
            frame.writeBuffer(&raw)
        }
        guard frame.readableBytes <= maxFrameBytes else { return nil }
        c.epoch = epoch
        c.sequence = sequence
        c.base = base
        c.previousList = list
        c.hasPrevious = true
        context = c
        ids = newIDs
        return frame
    }
}
