import FleetwatchProtocol
import NIOCore
import Testing

/// Protocol 3's delta batches: an encoder and a decoder kept in step over a connection's batches.
@Suite struct DeltaBatchTests {
    /// `payload`'s ticks as one-second batches (one sample per metric each), as a bot flushing every second sends.
    static func oneSecondBatches(_ payload: BatchPayload) -> [BatchPayload] {
        let ticks = payload.series.map(\.count).max() ?? 0
        return (0..<ticks).map { t in
            BatchPayload(series: payload.series.filter { $0.count > t }.map { s in
                Series(name: s.name, kind: s.kind, timestamps: [s.timestamps[t]],
                       values: s.values.isEmpty ? [] : [s.values[t]], states: s.states.isEmpty ? [] : [s.states[t]])
            })
        }
    }

    /// Encodes `batches` on one connection and decodes them on the other end; returns the frames.
    @discardableResult
    static func roundTrip(_ batches: [BatchPayload], epoch: UInt64 = 1_764_072_000_000_000, firstSequence: UInt64 = 1,
                          encoder: inout DeltaEncoder, decoder: inout DeltaDecoder) throws -> [ByteBuffer] {
        var frames: [ByteBuffer] = []
        for (i, batch) in batches.enumerated() {
            let sequence = firstSequence + UInt64(i)
            let bytesEncoded = encoder.encode(epoch: epoch, sequence: sequence, payload: batch)
            let bytes = try #require(bytesEncoded)
            guard case .deltaBatch(let frame) = try Frame.decode(bytes) else {
                Issue.record("not a delta batch frame")
                return frames
            }
            let decoded = try decoder.decode(frame, limits: BatchLimits())
            #expect(decoded.bootEpoch == epoch && decoded.sequence == sequence)
            #expect(sameSamples(decoded.payload, batch), "batch \(i)")
            frames.append(bytes)
        }
        return frames
    }

    /// Equal sample for sample, comparing values by bit pattern (NaN included).
    static func sameSamples(_ a: BatchPayload, _ b: BatchPayload) -> Bool {
        guard a.series.count == b.series.count else { return false }
        for (x, y) in zip(a.series, b.series) {
            guard x.name == y.name, x.kind == y.kind, x.timestamps == y.timestamps, x.states == y.states,
                  x.values.map(\.bitPattern) == y.values.map(\.bitPattern) else { return false }
        }
        return true
    }

    @Test func aMinuteOfOneSecondBatchesRoundTripsInAtMostThreeBytesPerSample() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        let batches = Self.oneSecondBatches(Fixtures.realistic(ticks: 60, metrics: 50))
        let frames = try Self.roundTrip(batches, encoder: &encoder, decoder: &decoder)
        let bytes = frames.reduce(0) { $0 + $1.readableBytes }
        let perSample = Double(bytes) / Double(batches.reduce(0) { $0 + $1.sampleCount })
        #expect(perSample <= 3.0, "\(perSample) bytes per sample")
        // The same batches self-contained (protocols 1 and 2) for scale: names travel every time.
        let selfContained = try batches.enumerated().reduce(0) {
            $0 + Frame.batch(try BatchFrame.make(bootEpoch: 1, sequence: UInt64($1.offset + 1), payload: $1.element)).encoded().readableBytes
        }
        #expect(bytes * 2 < selfContained, "\(bytes) delta bytes vs \(selfContained) self-contained")
        #expect(decoder.definedMetrics == 50 && encoder.definedMetrics == 50)
    }

    @Test func encodingsChangeAsValuesDo() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        let values: [Double] = [150, 150.5, 150.25, .nan, 1e300, -0.0, 3, 0.1 + 0.2, -7, .infinity, 2e-9, 9_007_199_254_740_993]
        let batches = values.enumerated().map { i, v in
            BatchPayload(series: [Series(name: "g", kind: .gauge, timestamps: [1_000 + Int64(i) * 1000], values: [v]),
                                  Series(name: "c", kind: .counter, timestamps: [1_000 + Int64(i) * 1000], values: [Double(i * 3)])])
        }
        try Self.roundTrip(batches, encoder: &encoder, decoder: &decoder)
    }

    @Test func statesTravelOnceThenAsNumbers() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        let states = ["connected", "connected", "reconnecting", "connected", "", "a\u{0}b", "ab", "reconnecting"]
        let batches = states.enumerated().map { i, s in
            BatchPayload(series: [Series(name: "websocket_status", kind: .state, timestamps: [Int64(i)], states: [s])])
        }
        var expected = batches
        expected[5].series[0].states = ["ab"]   // NUL is never sent (PostgreSQL text cannot hold it)
        for (i, batch) in batches.enumerated() {
            let bytesEncoded = encoder.encode(epoch: 9, sequence: UInt64(i + 1), payload: batch)
            let bytes = try #require(bytesEncoded)
            guard case .deltaBatch(let frame) = try Frame.decode(bytes) else { Issue.record("not a delta"); return }
            #expect(Self.sameSamples(try decoder.decode(frame, limits: BatchLimits()).payload, expected[i]))
            if i == 3 { #expect(bytes.readableBytes < 12, "a state sent before travels as its number: \(bytes.readableBytes) bytes") }
        }
    }

    @Test func stateStringsBeyondTheConnectionsBudgetTravelInFull() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        let batches = (0..<600).map { i in
            BatchPayload(series: [Series(name: "order_state", kind: .state, timestamps: [Int64(i), Int64(i) + 1],
                                         states: ["order-\(i % 300)", "order-\(i % 300)"])])
        }
        try Self.roundTrip(batches, encoder: &encoder, decoder: &decoder)
    }

    @Test func seriesComeGoAndChangeOrder() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        func s(_ name: String, _ kind: MetricKind, _ ts: [Int64], _ vs: [Double]) -> Series {
            Series(name: name, kind: kind, timestamps: ts, values: vs)
        }
        func s(_ name: String, _ ts: [Int64], _ vs: [Double]) -> Series {
            Series(name: name, kind: .gauge, timestamps: ts, values: vs)
        }
        let batches = [
            BatchPayload(series: [s("a", [10], [1]), s("b", [11], [2])]),
            BatchPayload(series: [s("a", [20], [1.5]), s("b", [21], [2])]),             // same list
            BatchPayload(series: [s("b", [31], [3]), s("a", [30], [4])]),               // other order
            BatchPayload(series: [s("c", .counter, [40, 41, 45], [1, 2, 3]), s("a", [40], [5])]),  // new, counts
            BatchPayload(series: []),                                                    // empty
            BatchPayload(series: [s("a", .counter, [50], [6]), s("a", [50, 49], [7, 8])]),  // one name, two kinds
            BatchPayload(series: [s("b", [5], [9])]),                                    // time goes back
        ]
        try Self.roundTrip(batches, encoder: &encoder, decoder: &decoder)
        #expect(decoder.definedMetrics == 4)
    }

    @Test func epochsAndSequencesMayJump() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        let batch = BatchPayload(series: [Series(name: "x", kind: .gauge, timestamps: [1], values: [1])])
        try Self.roundTrip([batch, batch], epoch: 7, firstSequence: 1, encoder: &encoder, decoder: &decoder)
        try Self.roundTrip([batch], epoch: 3, firstSequence: 900, encoder: &encoder, decoder: &decoder)   // a spooled epoch
        try Self.roundTrip([batch], epoch: 7, firstSequence: 5, encoder: &encoder, decoder: &decoder)
        try Self.roundTrip([batch], epoch: UInt64(Int64.max), firstSequence: UInt64(Int64.max), encoder: &encoder, decoder: &decoder)
    }

    @Test func largeBatchesAreCompressed() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        let big = Fixtures.realistic(ticks: 20, metrics: 50)
        let frames = try Self.roundTrip([big, Fixtures.realistic(ticks: 20, metrics: 50, seed: 8)], encoder: &encoder, decoder: &decoder)
        #expect(frames.allSatisfy { $0.getInteger(at: 1, as: UInt8.self)! & 0x02 != 0 }, "compressed flag")
        #expect(Double(frames[1].readableBytes) / Double(big.sampleCount) < 3.0)
    }

    @Test func whatCannotBeADeltaIsRefusedWithNothingChanged() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        let first = BatchPayload(series: [Series(name: "keep", kind: .gauge, timestamps: [1], values: [1])])
        try Self.roundTrip([first], encoder: &encoder, decoder: &decoder)
        let twice = BatchPayload(series: [Series(name: "d", kind: .gauge, timestamps: [1], values: [1]),
                                          Series(name: "d", kind: .gauge, timestamps: [2], values: [2])])
        #expect(encoder.encode(epoch: 1_764_072_000_000_000, sequence: 2, payload: twice) == nil)
        let many = BatchPayload(series: (0..<2_000).map { Series(name: "m\($0)", kind: .gauge, timestamps: [1], values: [1]) })
        #expect(encoder.encode(epoch: 1_764_072_000_000_000, sequence: 2, payload: many) == nil, "2,001 metrics on one connection")
        #expect(encoder.encode(epoch: 1_764_072_000_000_000, sequence: 2, payload: first, maxFrameBytes: 4) == nil)
        // Nothing moved: the next batch still decodes against the same context.
        try Self.roundTrip([first], firstSequence: 2, encoder: &encoder, decoder: &decoder)
        #expect(encoder.definedMetrics == 1)
    }

    // MARK: refused input

    /// The body after the type byte of a delta batch, from raw parts.
    static func frame(_ bytes: [UInt8]) -> DeltaBatchFrame { DeltaBatchFrame(body: ByteBuffer(bytes: bytes)) }

    static func refusal(_ bodies: [[UInt8]], limits: BatchLimits = BatchLimits()) -> WireError? {
        var decoder = DeltaDecoder()
        for (i, body) in bodies.enumerated() {
            do {
                _ = try decoder.decode(frame(body), limits: limits)
            } catch let e as WireError {
                return i == bodies.count - 1 ? e : WireError(.truncated, "refused early at \(i): \(e)")
            } catch {
                return WireError(.truncated, "\(error)")
            }
        }
        return nil
    }

    // A valid first batch: epoch 7, sequence 1, one sample; base 100; list of one new gauge "g"; one change to
    // decimal scale 0; timestamp +0; value 5.
    static let valid: [UInt8] = [0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x67, 1, 1, 0, 1, 0, 0, 10]

    @Test func aValidHandWrittenBatchDecodes() throws {
        var decoder = DeltaDecoder()
        let batch = try decoder.decode(Self.frame(Self.valid), limits: BatchLimits())
        #expect(batch.bootEpoch == 7 && batch.sequence == 1)
        #expect(batch.payload == BatchPayload(series: [Series(name: "g", kind: .gauge, timestamps: [100], values: [5])]))
        // The next: no epoch, sequence +1, base +1000, same list, no change, timestamp +0, value +1.
        let next = try decoder.decode(Self.frame([0x00, 2, 1, 0xd0, 0x0f, 0, 0, 0, 2]), limits: BatchLimits())
        #expect(next.sequence == 2 && next.payload.series[0].timestamps == [1100] && next.payload.series[0].values == [6])
    }

    @Test(arguments: [
        ("unknown flag bits", [[0x05, 7, 2, 1, 200, 1, 2, 0, 1, 0x67, 1, 1, 0, 1, 0, 0, 10]], WireError.Code.invalidField),
        ("first batch without epoch", [[0x00, 2, 1, 200, 1, 2, 0, 1, 0x67, 1, 1, 0, 1, 0, 0, 10]], .invalidField),
        ("sequence 0", [[0x01, 7, 0, 1, 200, 1, 2, 0, 1, 0x67, 1, 1, 0, 1, 0, 0, 10]], .invalidField),
        ("repeat with no earlier batch", [[0x01, 7, 2, 1, 200, 1, 0, 0, 0, 10]], .invalidField),
        ("undefined reference", [[0x01, 7, 2, 1, 200, 1, 2, 4, 1, 0, 1, 0, 0, 10]], .invalidField),
        ("invalid metric name", [[0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x20, 1, 1, 0, 1, 0, 0, 10]], .invalidField),
        ("unknown kind", [[0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x67, 9, 1, 0, 1, 0, 0, 10]], .invalidField),
        ("no encoding yet", [[0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x67, 1, 0, 0, 10]], .invalidField),
        ("state encoding for a gauge", [[0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x67, 1, 1, 0, 2, 0, 0]], .invalidField),
        ("scale 10", [[0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x67, 1, 1, 0, 1, 10, 0, 10]], .invalidField),
        ("change out of range", [[0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x67, 1, 1, 1, 1, 0, 0, 10]], .invalidField),
        ("trailing bytes", [[0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x67, 1, 1, 0, 1, 0, 0, 10, 0]], .trailingBytes),
        ("truncated", [[0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x67, 1, 1, 0, 1, 0, 0]], .truncated),
        ("fewer samples than series", [[0x01, 7, 2, 0, 200, 1, 2, 0, 1, 0x67, 1, 1, 0, 1, 0, 0, 10]], .corruptPayload),
        ("counts that do not add up", [[0x01, 7, 2, 3, 200, 1, 2, 0, 1, 0x67, 1, 2, 1, 0, 1, 0, 0, 0, 10, 2]], .corruptPayload),
        ("too many samples", [[0x01, 7, 2, 0xa1, 0x9c, 0x01, 200, 1]], .limitExceeded),
        ("the same metric twice", [[0x01, 7, 2, 2, 200, 1, 3, 0, 1, 0x67, 1, 1, 1, 0, 1, 0, 0, 10, 0, 10]], .invalidField),
        ("state index never sent", [[0x01, 7, 2, 1, 200, 1, 2, 0, 1, 0x73, 3, 1, 0, 2, 0, 3]], .invalidField),
        ("negative base time", [[0x01, 7, 2, 1, 1, 2, 0, 1, 0x67, 1, 1, 0, 1, 0, 0, 10]], .invalidField),
        ("compressed payload that is not zlib", [[0x03, 7, 2, 1, 17, 1, 2, 3]], .corruptPayload),
        ("compressed payload declaring more than the limit", [[0x03, 7, 2, 1, 0x81, 0x80, 0x80, 0x02, 0x78, 0x9c]], .payloadTooLarge),
    ] as [(String, [[UInt8]], WireError.Code)])
    func malformedDeltaBatchesAreRefused(_ name: String, _ bodies: [[UInt8]], _ code: WireError.Code) {
        let error = Self.refusal(bodies)
        #expect(error?.code == code, "\(name): \(String(describing: error))")
    }

    @Test func aConnectionDefinesAtMostTwoThousandMetrics() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        let batches = (0..<2).map { b in
            BatchPayload(series: (0..<1_000).map { Series(name: "m\(b)_\($0)", kind: .gauge, timestamps: [1], values: [1]) })
        }
        try Self.roundTrip(batches, encoder: &encoder, decoder: &decoder)
        // One more definition, hand-written: refused by the hub's decoder.
        let body: [UInt8] = [0x00, 6, 1, 0, 2, 0, 1, 0x7a, 1, 1, 0, 1, 0, 0, 2]
        #expect(throws: WireError.self) { try decoder.decode(Self.frame(body), limits: BatchLimits()) }
    }

    @Test func afterARefusalTheDecoderRefusesEverything() throws {
        var decoder = DeltaDecoder()
        #expect(throws: WireError.self) { try decoder.decode(Self.frame([0x05]), limits: BatchLimits()) }
        #expect(throws: WireError.self) { try decoder.decode(Self.frame(Self.valid), limits: BatchLimits()) }
    }

    @Test func everyTruncationOfARealFrameIsRefusedNotCrashed() throws {
        var encoder = DeltaEncoder()
        let batches = Self.oneSecondBatches(Fixtures.realistic(ticks: 2, metrics: 20))
        let firstEncoded = encoder.encode(epoch: 5, sequence: 1, payload: batches[0])
        let first = try #require(firstEncoded)
        let bytes = Array(first.readableBytesView.dropFirst())
        for cut in 0..<bytes.count {
            var decoder = DeltaDecoder()
            #expect(throws: WireError.self) { try decoder.decode(Self.frame(Array(bytes[..<cut])), limits: BatchLimits()) }
        }
    }

    @Test func theHeaderDeclaresItsSizesWithoutTheContext() throws {
        var encoder = DeltaEncoder()
        let big = Fixtures.realistic(ticks: 20, metrics: 50)
        let frameEncoded = encoder.encode(epoch: 5, sequence: 1, payload: big)
        let frame = try #require(frameEncoded)
        let declared = try #require(DeltaBatchFrame.declaredSizes(ofMessage: frame))
        #expect(declared.samples == UInt64(big.sampleCount))
        #expect((declared.rawLength ?? 0) > UInt64(frame.readableBytes))
        #expect(DeltaBatchFrame.declaredSizes(ofMessage: ByteBuffer(bytes: [0x09, 0x80])) == nil)
    }
}
