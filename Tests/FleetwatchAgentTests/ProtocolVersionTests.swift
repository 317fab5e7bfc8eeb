@testable import FleetwatchAgent
import FleetwatchProtocol
import Logging
import NIOCore
import Testing

/// Which version the agent offers, and what it sends once a hub answered in it.
@Suite struct ProtocolVersionTests {
    static func core(offering version: UInt16 = WireProtocol.version) throws -> AgentCore {
        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:1/agent/v1", botID: "bot", token: "t")
        c.protocolVersion = version
        c.processCollector = false
        return try AgentCore(configuration: c, epoch: 77, logger: Logger(label: "t"), onSeal: nil)
    }

    static func offered(_ core: AgentCore) async throws -> UInt16 {
        let (hello, _) = await core.opened(botID: "bot", token: "t", agentVersion: "t")
        guard case .hello(let h) = try Frame.decode(hello) else { throw WireError(.invalidField, "not a hello") }
        return h.protocolVersion
    }

    static func welcome(_ version: UInt16) -> Frame {
        .welcome(Welcome(protocolVersion: version, bootEpoch: 77, storedSequence: 0, heartbeatIntervalMs: 5000,
                         maxFrameBytes: 1 << 20, maxPayloadBytes: 4 << 20, maxSamplesPerBatch: 20_000))
    }

    static func samples(_ i: Int) -> [Series] {
        [Series(name: "memory_usage_mb", kind: .gauge, timestamps: [1_000 + Int64(i) * 1000], values: [150 + Double(i) / 10]),
         Series(name: "trades_executed", kind: .counter, timestamps: [1_000 + Int64(i) * 1000], values: [Double(i)])]
    }

    /// A hub that answers 4001 (it does not speak the offered version) gets the next lower one, down to 1.
    @Test func eachRefusedVersionStepsDownOne() async throws {
        let core = try Self.core()
        var offered: [UInt16] = []
        for _ in 0..<4 {
            offered.append(try await Self.offered(core))
            _ = await core.closed(code: .unsupportedVersion, error: nil)
        }
        #expect(offered == [3, 2, 1, 1])
        #expect(try await Self.offered(Self.core(offering: 2)) == 2)
    }

    /// On a v3 connection fresh batches go as delta batches; after a reconnect the unacknowledged ones are coded
    /// again for the new connection; on a v2 connection they go self-contained.
    @Test func aVersionThreeConnectionSendsDeltaBatches() async throws {
        let core = try Self.core()
        _ = await core.start()
        _ = try await Self.offered(core)
        _ = await core.received(Self.welcome(3))
        for i in 0..<3 { await core.add(Self.samples(i)) }
        let first = await core.nextWork().frames.compactMap { try? Frame.decode($0) }
        #expect(first.count == 3)
        #expect(first.allSatisfy { if case .deltaBatch = $0 { true } else { false } })
        // The connection drops before any ack: the three are resent, coded against an empty context again.
        _ = await core.closed(code: nil, error: nil)
        _ = await core.waited()
        _ = try await Self.offered(core)
        _ = await core.received(Self.welcome(3))
        let again = await core.nextWork().frames
        #expect(again.count == 3)
        var decoder = DeltaDecoder()
        for (i, bytes) in again.enumerated() {
            guard case .deltaBatch(let d) = try Frame.decode(bytes) else { Issue.record("not a delta batch"); continue }
            let batch = try decoder.decode(d, limits: BatchLimits())
            #expect(batch.sequence == UInt64(i + 1) && batch.payload.series == Self.samples(i))
        }
        // A hub that answers in version 2 gets self-contained batches.
        _ = await core.closed(code: nil, error: nil)
        _ = await core.waited()
        _ = try await Self.offered(core)
        _ = await core.received(Self.welcome(2))
        let v2 = await core.nextWork().frames.compactMap { try? Frame.decode($0) }
        #expect(v2.count == 3)
        #expect(v2.allSatisfy { if case .batch = $0 { true } else { false } })
    }
}
