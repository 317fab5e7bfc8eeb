import FleetwatchProtocol
import NIOCore
import Testing

@Suite struct RoundTripTests {
    @Test(arguments: GoldenVectorTests.cases.map(\.0))
    func everyFrameRoundTrips(name: String) throws {
        let frame = GoldenVectorTests.cases.first { $0.0 == name }!.1
        #expect(try Frame.decode(frame.encoded()) == frame)
    }

    @Test func batchRoundTripsThroughZlib() throws {
        let payload = Fixtures.realistic()
        let frame = try BatchFrame.make(bootEpoch: 9, sequence: 1, payload: payload)
        guard case .batch(let decoded) = try Frame.decode(Frame.batch(frame).encoded()) else {
            Issue.record("not a batch")
            return
        }
        #expect(try decoded.inflate(limits: BatchLimits()) == payload)
    }

    @Test(arguments: [
        [0.0, 1, -1, 1e15, -1e15],
        [0.1, 0.2, 0.30000000000000004],
        [123.45, -0.01, 99.99],
        [Double.pi, Double.leastNonzeroMagnitude, Double.greatestFiniteMagnitude, -0.0],
        [1e-9, 2.5e-7],
    ])
    func valuesRoundTripBitForBit(values: [Double]) throws {
        let payload = BatchPayload(series: [Series(name: "v", kind: .gauge,
                                                   timestamps: values.indices.map { Int64($0) * 7 }, values: values)])
        var raw = ByteBuffer()
        payload.encode(into: &raw)
        let back = try BatchPayload.decode(raw, limits: BatchLimits())
        #expect(back.series[0].values.map(\.bitPattern) == values.map { $0 == 0 ? 0.0.bitPattern : $0.bitPattern }
            || back.series[0].values.map(\.bitPattern) == values.map(\.bitPattern))
        #expect(back.series[0].values == values)
    }

    @Test func timestampsMayGoBackwardsAndRepeat() throws {
        let ts: [Int64] = [1_000, 900, 900, 5_000_000_000_000, 0]
        let payload = BatchPayload(series: [Series(name: "t", kind: .counter, timestamps: ts, values: [1, 2, 3, 4, 5])])
        var raw = ByteBuffer()
        payload.encode(into: &raw)
        #expect(try BatchPayload.decode(raw, limits: BatchLimits()).series[0].timestamps == ts)
    }

    @Test func varintBoundaries() throws {
        for v: UInt64 in [0, 1, 127, 128, 16_383, 16_384, UInt64(Int64.max), UInt64.max] {
            var b = ByteBuffer()
            b.writeVarint(v)
            #expect(try b.readVarint("v") == v)
            #expect(b.readableBytes == 0)
        }
        for v: Int64 in [0, -1, 1, Int64.min, Int64.max] {
            #expect(Zigzag.decode(Zigzag.encode(v)) == v)
        }
    }
}

@Suite struct TruncationTests {
    @Test func cutsOnCharacterBoundaries() {
        let s = String(repeating: "é", count: 200)   // 400 bytes
        let t = WireProtocol.truncated(s, maxBytes: 255)
        #expect(t.utf8.count == 254)
        #expect(WireProtocol.truncated("ok", maxBytes: 256) == "ok")
    }
}
