import FleetwatchProtocol
import NIOCore
import Testing

@Suite struct MalformedInputTests {
    /// Every proper prefix of every frame is refused as truncated, never crashes, never decodes — except the
    /// 18-byte prefix of a v2 ack, which is a whole v1 ack (the message's length tells the two apart).
    @Test(arguments: GoldenVectorTests.cases.map(\.0))
    func byteAtATimePrefixesAreTruncated(name: String) throws {
        let bytes = GoldenVectorTests.cases.first { $0.0 == name }!.1.encoded()
        for length in 0..<bytes.readableBytes {
            let prefix = bytes.getSlice(at: 0, length: length)!
            if name.hasPrefix("ack-v2"), length == 18 {
                guard case .ack(let ack) = try Frame.decode(prefix) else { Issue.record("not an ack"); continue }
                #expect(ack.refusedSamples == nil)
                continue
            }
            #expect(throws: WireError.self) { try Frame.decode(prefix) }
        }
    }

    /// Two frames merged into one message are refused (one frame per WebSocket message).
    @Test func mergedFramesAreRefused() throws {
        var merged = Fixtures.ack.encoded()
        var second = Fixtures.heartbeat.encoded()
        merged.writeBuffer(&second)
        let error = try #require(throws: WireError.self) { try Frame.decode(merged) }
        #expect(error.code == .trailingBytes)
    }

    @Test func batchPayloadPrefixesNeverDecode() throws {
        var raw = ByteBuffer()
        Fixtures.payload.encode(into: &raw)
        for length in 0..<raw.readableBytes {
            #expect(throws: WireError.self) { try BatchPayload.decode(raw.getSlice(at: 0, length: length)!, limits: BatchLimits()) }
        }
    }

    @Test(arguments: [UInt16(0), 4, 0xFFFF])
    func unknownProtocolVersion(version: UInt16) throws {
        for frame in [Fixtures.hello, Fixtures.welcome] {
            var bytes = frame.encoded()
            bytes.setInteger(version, at: 1, endianness: .little)
            let error = try #require(throws: WireError.self) { try Frame.decode(bytes) }
            #expect(error.code == .unsupportedVersion)
            #expect(error.closeCode == .unsupportedVersion)
        }
    }

    @Test func everySupportedVersionIsSpoken() throws {
        for version in WireProtocol.supportedVersions {
            var bytes = Fixtures.hello.encoded()
            bytes.setInteger(version, at: 1, endianness: .little)
            guard case .hello(let hello) = try Frame.decode(bytes) else { Issue.record("not a hello"); return }
            #expect(hello.protocolVersion == version)
        }
    }

    /// A v2 ack is 23 bytes: one byte more or less than that (or than the v1 ack's 18) is malformed.
    @Test func ackOfNeitherLengthIsRefused() throws {
        let v2 = Fixtures.ackV2Refused.encoded()
        #expect(v2.readableBytes == 23)
        for length in [19, 20, 21, 22] {
            #expect(throws: WireError.self) { try Frame.decode(v2.getSlice(at: 0, length: length)!) }
        }
        var longer = v2
        longer.writeInteger(UInt8(0))
        #expect(throws: WireError.self) { try Frame.decode(longer) }
    }

    @Test func unknownFrameType() throws {
        let error = try #require(throws: WireError.self) { try Frame.decode(ByteBuffer(bytes: [0x7F, 0, 0])) }
        #expect(error.code == .unknownFrameType)
    }

    @Test func frameAboveTheConfiguredSize() throws {
        let bytes = Fixtures.hello.encoded()
        let error = try #require(throws: WireError.self) { try Frame.decode(bytes, maxFrameBytes: bytes.readableBytes - 1) }
        #expect(error.closeCode == .frameTooLarge)
        #expect(try Frame.decode(bytes, maxFrameBytes: bytes.readableBytes) == Fixtures.hello)
    }

    @Test func invalidBotID() throws {
        let hello = Frame.hello(Hello(botID: "bad bot'; DROP TABLE bots;--", token: "t", agentVersion: "v", bootEpoch: 1, lastAckedSequence: 0))
        let error = try #require(throws: WireError.self) { try Frame.decode(hello.encoded()) }
        #expect(error.code == .invalidField)
    }

    /// A batch that inflates to `size` bytes while declaring `declared`.
    static func bomb(size: Int, declared: Int) throws -> BatchFrame {
        var raw = ByteBuffer()
        raw.writeRepeatingByte(0, count: size)
        let compressed = try Zlib.compress(raw)
        return BatchFrame(bootEpoch: 1, sequence: 1, sampleCount: 0, rawLength: UInt32(declared), compressed: compressed)
    }

    /// Zip bombs at cap − 1, cap and cap + 1: only the declared length is ever allocated.
    @Test func zipBombsAroundTheCap() throws {
        let cap = 1 << 20
        let limits = BatchLimits(maxPayloadBytes: cap)
        // Declared within the cap but inflating far past it: refused as too large, not inflated in full.
        let liar = try Self.bomb(size: 64 << 20, declared: cap - 1)
        #expect(liar.compressed.readableBytes < 100_000)
        let e1 = try #require(throws: WireError.self) { try liar.inflate(limits: limits) }
        #expect(e1.code == .payloadTooLarge)
        // Honest declarations: cap − 1 and cap pass the size checks (then fail as not-a-payload), cap + 1 is refused up front.
        for (size, tooLarge) in [(cap - 1, false), (cap, false), (cap + 1, true)] {
            let honest = try Self.bomb(size: size, declared: size)
            let e = try #require(throws: WireError.self) { try honest.inflate(limits: limits) }
            #expect((e.code == .payloadTooLarge) == tooLarge, "size \(size): \(e)")
        }
    }

    @Test func corruptAndTruncatedZlib() throws {
        let good = try BatchFrame.make(bootEpoch: 1, sequence: 1, payload: Fixtures.payload)
        var corrupt = good
        corrupt.compressed = ByteBuffer(bytes: Array(good.compressed.readableBytesView).map { $0 ^ 0x5A })
        #expect(throws: WireError.self) { try corrupt.inflate(limits: BatchLimits()) }
        var truncated = good
        truncated.compressed = good.compressed.getSlice(at: 0, length: good.compressed.readableBytes / 2)!
        let e = try #require(throws: WireError.self) { try truncated.inflate(limits: BatchLimits()) }
        #expect(e.closeCode == .badBatch)
        var shortDeclared = good
        shortDeclared.rawLength -= 1
        #expect(throws: WireError.self) { try shortDeclared.inflate(limits: BatchLimits()) }
        var wrongCount = good
        wrongCount.sampleCount += 1
        #expect(throws: WireError.self) { try wrongCount.inflate(limits: BatchLimits()) }
    }

    @Test func seriesAndSampleLimits() throws {
        let frame = try BatchFrame.make(bootEpoch: 1, sequence: 1, payload: Fixtures.realistic(ticks: 20, metrics: 50))
        #expect(throws: WireError.self) { try frame.inflate(limits: BatchLimits(maxSamples: 999)) }
        #expect(throws: WireError.self) { try frame.inflate(limits: BatchLimits(maxSeries: 49)) }
        #expect(try frame.inflate(limits: BatchLimits(maxSamples: 1000, maxSeries: 50)).sampleCount == 1000)
    }

    @Test func hugeClaimedCountsDoNotAllocate() throws {
        var raw = ByteBuffer()
        raw.writeVarint(0)            // base
        raw.writeVarint(1)            // one series
        raw.writeWireString("m")
        raw.writeInteger(UInt8(1))
        raw.writeVarint(UInt64(Int32.max))   // claims 2^31 samples
        let e = try #require(throws: WireError.self) { try BatchPayload.decode(raw, limits: BatchLimits()) }
        #expect(e.code == .limitExceeded)
    }

    /// A payload of a few bytes that declares the most series a batch may hold is refused as truncated once its
    /// bytes run out (the decoder reserves room by the bytes it has, not by the claim).
    @Test func aShortPayloadClaimingManySeriesIsTruncated() throws {
        var raw = ByteBuffer()
        raw.writeVarint(0)                                   // base
        raw.writeVarint(UInt64(BatchLimits().maxSeries))     // claims 2,000 series
        raw.writeWireString("m")
        raw.writeInteger(MetricKind.gauge.rawValue)
        raw.writeVarint(1); raw.writeZigzag(0)
        raw.writeInteger(UInt8(0)); raw.writeInteger(UInt64(0), endianness: .little)   // one float sample, then nothing
        let e = try #require(throws: WireError.self) { try BatchPayload.decode(raw, limits: BatchLimits()) }
        #expect(e.code == .truncated)
    }

    @Test func stateEncodingOnlyForStateSeries() throws {
        var raw = ByteBuffer()
        raw.writeVarint(0); raw.writeVarint(1); raw.writeWireString("m")
        raw.writeInteger(MetricKind.gauge.rawValue)
        raw.writeVarint(1); raw.writeZigzag(0)
        raw.writeInteger(UInt8(2))   // state dictionary for a gauge
        raw.writeVarint(1); raw.writeWireString("x"); raw.writeVarint(0)
        #expect(throws: WireError.self) { try BatchPayload.decode(raw, limits: BatchLimits()) }
    }

    @Test func nonFiniteValuesSurviveTheCodecForTheHubToRefuse() throws {
        let payload = BatchPayload(series: [Series(name: "g", kind: .gauge, timestamps: [1, 2, 3], values: [.nan, .infinity, 1])])
        var raw = ByteBuffer()
        payload.encode(into: &raw)
        let back = try BatchPayload.decode(raw, limits: BatchLimits())
        #expect(back.series[0].values[0].isNaN)
        #expect(back.series[0].values[1] == .infinity)
    }
}
