@testable import FleetwatchAgent
import FleetwatchProtocol
import FleetwatchTestSupport
import Logging
import NIOCore
import Testing

/// Which version the agent offers, and what it sends once a hub answered in it.
@Suite struct ProtocolVersionTests {
    /// With `maxCoalesceDelay` nil, every `add` seals a batch of its own, acked or not.
    static func core(offering version: UInt16 = WireProtocol.version, maxCoalesceDelay: Duration? = nil,
                     logger: Logger = Logger(label: "t")) throws -> AgentCore {
        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:1/agent/v1", botID: "bot", token: "t")
        c.protocolVersion = version
        c.processCollector = false
        c.maxCoalesceDelay = maxCoalesceDelay
        return try AgentCore(configuration: c, epoch: 77, logger: logger, onSeal: nil)
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

    /// While a batch awaits its ack, later flushes wait and go together in one batch once the ack is back; the
    /// samples and their order are those recorded.
    @Test func flushesWaitingForAnAckGoInOneBatch() async throws {
        let core = try Self.core(maxCoalesceDelay: .seconds(600))
        _ = await core.start()
        _ = try await Self.offered(core)
        _ = await core.received(Self.welcome(3))
        for i in 0..<4 { await core.add(Self.samples(i)) }
        var decoder = DeltaDecoder()
        let first = try await Self.sent(core, &decoder)
        #expect(first.map(\.sequence) == [1] && first[0].payload.series == Self.samples(0))
        let waiting = await core.status
        #expect(waiting.bufferedSamples == 8 && waiting.unackedBatches == 1)
        // The ack seals the three flushes that waited into batch 2.
        _ = await core.received(.ack(Ack(bootEpoch: 77, sequence: 1, outcome: .stored)))
        let second = try await Self.sent(core, &decoder)
        #expect(second.map(\.sequence) == [2])
        try Self.expectMerged(second.first, flushes: 1..<4)
        // Acked and nothing waiting: the next flush is sent at once again.
        _ = await core.received(.ack(Ack(bootEpoch: 77, sequence: 2, outcome: .stored)))
        await core.add(Self.samples(4))
        #expect(try await Self.sent(core, &decoder).map(\.sequence) == [3])
    }

    /// A hub that acks nothing (its database is down: it evaluates batches and defers them) still gets the
    /// samples once they have waited `maxCoalesceDelay`.
    @Test func samplesWaitForAnAckNoLongerThanTheDelay() async throws {
        let core = try Self.core(maxCoalesceDelay: .milliseconds(50))
        _ = await core.start()
        _ = try await Self.offered(core)
        _ = await core.received(Self.welcome(3))
        var decoder = DeltaDecoder()
        await core.add(Self.samples(0))
        await core.add(Self.samples(1))
        #expect(try await Self.sent(core, &decoder).map(\.sequence) == [1])
        try await Task.sleep(for: .milliseconds(60))
        await core.add(Self.samples(2))   // sample 1 has waited past the delay: 1 and 2 go now, unacked or not
        let late = try await Self.sent(core, &decoder)
        #expect(late.map(\.sequence) == [2])
        try Self.expectMerged(late.first, flushes: 1..<3)
        #expect(await core.status.unackedBatches == 2)
    }

    /// No delay, a zero one, and a negative one (a careless setting, taken as zero) all send each flush in a
    /// batch of its own while earlier ones await their acks.
    @Test(arguments: [nil, Duration.zero, Duration.seconds(-5)])
    func withoutACoalescingDelayEveryFlushIsItsOwnBatch(delay: Duration?) async throws {
        let core = try Self.core(maxCoalesceDelay: delay)
        _ = await core.start()
        _ = try await Self.offered(core)
        _ = await core.received(Self.welcome(3))
        var decoder = DeltaDecoder()
        for i in 0..<3 { await core.add(Self.samples(i)) }
        let sent = try await Self.sent(core, &decoder)
        #expect(sent.map(\.sequence) == [1, 2, 3])
        #expect(sent.map(\.payload.series) == (0..<3).map(Self.samples))
        #expect(await core.status.unackedBatches == 3)
    }

    static func sent(_ core: AgentCore, _ decoder: inout DeltaDecoder) async throws -> [DecodedDeltaBatch] {
        var out: [DecodedDeltaBatch] = []
        for bytes in await core.nextWork().frames {
            let frame = try Frame.decode(bytes)
            if case .heartbeat = frame { continue }   // due now and then on a slow machine; not what these tests count
            guard case .deltaBatch(let d) = frame else { throw WireError(.invalidField, "not a delta batch") }
            out.append(try decoder.decode(d, limits: BatchLimits()))
        }
        return out
    }

    /// `batch` holds the samples of `flushes`, in order.
    static func expectMerged(_ batch: DecodedDeltaBatch?, flushes: Range<Int>) throws {
        let batch = try #require(batch)
        let merged = flushes.map(samples)
        for (n, name) in ["memory_usage_mb", "trades_executed"].enumerated() {
            let s = try #require(batch.payload.series.first { $0.name == name })
            #expect(s.timestamps == merged.map { $0[n].timestamps[0] } && s.values == merged.map { $0[n].values[0] })
        }
    }

    /// An agent that closes a silent connection itself reports 4008 as the connection's last close, not the 1000
    /// the hub answers its close with.
    @Test func aConnectionClosedForSilenceReportsTheHeartbeatTimeout() async throws {
        let core = try Self.core()
        _ = await core.start()
        _ = try await Self.offered(core)
        _ = await core.received(.welcome(Welcome(protocolVersion: 3, bootEpoch: 77, storedSequence: 0, heartbeatIntervalMs: 100,
                                                 maxFrameBytes: 1 << 20, maxPayloadBytes: 4 << 20, maxSamplesPerBatch: 20_000)))
        #expect(await core.nextWork().closeSilent == false)
        try await Task.sleep(for: .milliseconds(250))   // more than two heartbeat intervals without a word
        #expect(await core.nextWork().closeSilent)
        _ = await core.closed(code: .init(rawValue: 1000), error: nil)
        #expect(await core.status.lastCloseCode == CloseCode.heartbeatTimeout.rawValue)
        // A close the hub starts is reported as it is.
        _ = await core.waited()
        _ = try await Self.offered(core)
        _ = await core.closed(code: .init(rawValue: 1001), error: nil)
        #expect(await core.status.lastCloseCode == 1001)
    }

    /// When the hub closes a connection for silence, the agent warns with how long ago it last handed the
    /// connection a frame: seconds say the agent sent nothing; milliseconds say its frames did not reach the hub.
    @Test func aHubsCloseForSilenceSaysWhenTheAgentLastSent() async throws {
        let lines = RecordingLog()
        let core = try Self.core(logger: Logger(label: "t") { _ in lines })
        _ = await core.start()
        _ = try await Self.offered(core)
        _ = await core.received(Self.welcome(3))
        await core.add(Self.samples(0))
        #expect(await core.nextWork().frames.isEmpty == false)
        _ = await core.closed(code: .heartbeatTimeout, error: nil)
        let warning = try #require(lines.all.first { $0.level == .warning }?.message)
        #expect(warning.hasPrefix("hub closed the connection: 4008 heartbeat timeout: this agent last handed it a frame "), "\(warning)")
        #expect(warning.hasSuffix(" ms before"), "\(warning)")
        // Another close from the hub stays a plain notice.
        _ = await core.waited()
        _ = try await Self.offered(core)
        _ = await core.closed(code: .init(rawValue: 1001), error: nil)
        #expect(lines.all.filter { $0.level == .warning }.count == 1)
    }
}
