import FleetwatchProtocol
import Foundation
import NIOCore
import Testing

/// Every frame against the bytes committed in `Golden/` (see docs/protocol.md). Set
/// `FLEETWATCH_RECORD_GOLDEN=1` to rewrite them after a deliberate protocol change.
@Suite struct GoldenVectorTests {
    static let cases: [(String, Frame)] = [
        ("hello", Fixtures.hello), ("welcome", Fixtures.welcome), ("ack", Fixtures.ack),
        ("heartbeat", Fixtures.heartbeat), ("command", Fixtures.command), ("command-result", Fixtures.commandResult),
        ("emergency-declaration", Fixtures.emergencyDeclaration),
        ("hello-v2", Fixtures.helloV2), ("welcome-v2", Fixtures.welcomeV2), ("ack-v2", Fixtures.ackV2),
        ("ack-v2-refused", Fixtures.ackV2Refused), ("hello-v3", Fixtures.helloV3), ("welcome-v3", Fixtures.welcomeV3),
    ]

    static func goldenURL(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/\(name).hex")
    }

    static func golden(_ name: String, actual: ByteBuffer) throws -> ByteBuffer {
        let url = goldenURL(name)
        if ProcessInfo.processInfo.environment["FLEETWATCH_RECORD_GOLDEN"] == "1" {
            try (Fixtures.hex(actual) + "\n").write(to: url, atomically: true, encoding: .utf8)
        }
        return Fixtures.bytes(hex: try String(contentsOf: url, encoding: .utf8))
    }

    @Test(arguments: cases.map(\.0))
    func frameMatchesGoldenBytes(name: String) throws {
        let frame = Self.cases.first { $0.0 == name }!.1
        let expected = try Self.golden(name, actual: frame.encoded())
        #expect(Fixtures.hex(frame.encoded()) == Fixtures.hex(expected))
        #expect(try Frame.decode(expected) == frame)
    }

    @Test func batchPayloadMatchesGoldenBytes() throws {
        var raw = ByteBuffer()
        Fixtures.payload.encode(into: &raw)
        let expected = try Self.golden("batch-payload", actual: raw)
        #expect(Fixtures.hex(raw) == Fixtures.hex(expected))
        #expect(try BatchPayload.decode(expected, limits: BatchLimits()) == Fixtures.payload)
    }

    /// Protocol 3: three delta batches in a row on one connection, each against the ones before.
    @Test func deltaBatchesMatchGoldenBytes() throws {
        var encoder = DeltaEncoder(), decoder = DeltaDecoder()
        for (i, batch) in Fixtures.deltaStream.enumerated() {
            let bytesEncoded = encoder.encode(epoch: 1_764_072_000_000_000, sequence: 42 + UInt64(i), payload: batch)
            let bytes = try #require(bytesEncoded)
            let expected = try Self.golden("delta-batch-\(i + 1)", actual: bytes)
            #expect(Fixtures.hex(bytes) == Fixtures.hex(expected))
            guard case .deltaBatch(let frame) = try Frame.decode(expected) else {
                Issue.record("golden delta batch \(i + 1) did not decode as a delta batch")
                return
            }
            let decoded = try decoder.decode(frame, limits: BatchLimits())
            #expect(decoded.bootEpoch == 1_764_072_000_000_000 && decoded.sequence == 42 + UInt64(i))
            #expect(decoded.payload == batch)
        }
    }

    @Test func goldenBatchFrameDecodes() throws {
        let frame = try BatchFrame.make(bootEpoch: 1_764_072_000_000_000, sequence: 42, payload: Fixtures.payload)
        // zlib output may differ between zlib builds, so the golden frame is only decoded, not re-encoded.
        let golden = try Self.golden("batch-frame", actual: Frame.batch(frame).encoded())
        guard case .batch(let decoded) = try Frame.decode(golden) else {
            Issue.record("golden batch frame did not decode as a batch")
            return
        }
        #expect(decoded.bootEpoch == 1_764_072_000_000_000)
        #expect(decoded.sequence == 42)
        #expect(decoded.sampleCount == 7)
        #expect(try decoded.inflate(limits: BatchLimits()) == Fixtures.payload)
    }
}
