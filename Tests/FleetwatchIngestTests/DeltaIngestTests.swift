import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import Testing

/// Protocol 3's delta batches through a hub session: stored like self-contained ones, the context kept in step
/// by every batch (duplicates included), refused on older versions.
@Suite struct DeltaIngestTests {
    static let epoch = IngestSessionTests.epoch

    static func oneSecondBatches(count: Int, startMs: Int64) -> [BatchPayload] {
        (0..<count).map { (t: Int) -> BatchPayload in
            let at: Int64 = startMs + Int64(t) * 1000
            let memory: Double = 150 + Double(t) / 10
            let state: String = t % 3 == 0 ? "reconnecting" : "connected"
            return BatchPayload(series: [
                Series(name: "memory_usage_mb", kind: .gauge, timestamps: [at], values: [memory]),
                Series(name: "trades_executed", kind: .counter, timestamps: [at + 1], values: [Double(t * 2)]),
                Series(name: "websocket_status", kind: .state, timestamps: [at], states: [state]),
            ])
        }
    }

    @Test func deltaBatchesAreStoredExactlyLikeSelfContainedOnes() async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000) - 60_000
        let batches = Self.oneSecondBatches(count: 10, startMs: now)
        // The same batches from a v2 agent (self-contained) and a v3 agent (delta), as two bots.
        let store = InMemoryIngestStore(tokens: ["v2": "secret", "v3": "secret"])
        let v2 = IngestSessionTests.session(store)
        _ = await v2.handle(IngestSessionTests.hello(bot: "v2", version: 2))
        let v3 = IngestSessionTests.session(store)
        let welcome = await v3.handle(IngestSessionTests.hello(bot: "v3", version: 3))
        guard case .send(.welcome(let w))? = welcome.first else { Issue.record("no welcome: \(welcome)"); return }
        #expect(w.protocolVersion == 3)
        var encoder = DeltaEncoder()
        for (i, payload) in batches.enumerated() {
            let seq = UInt64(i + 1)
            let full = Frame.batch(try BatchFrame.make(bootEpoch: Self.epoch, sequence: seq, payload: payload)).encoded()
            #expect(await v2.handle(full) == [.send(.ack(Ack(bootEpoch: Self.epoch, sequence: seq, outcome: .stored, refusedSamples: 0)))])
            let deltaEncoded = encoder.encode(epoch: Self.epoch, sequence: seq, payload: payload)
            let delta = try #require(deltaEncoded)
            #expect(await v3.handle(delta) == [.send(.ack(Ack(bootEpoch: Self.epoch, sequence: seq, outcome: .stored, refusedSamples: 0)))])
        }
        let stored = await store.stored
        // The same batches but for the bot's own metric ids.
        func rows(_ bot: String) -> [ValidatedBatch] {
            stored.filter { $0.bot == bot }.map { var b = $0.batch; b.metricIDs = []; return b }
        }
        #expect(rows("v2").count == 10)
        #expect(rows("v3") == rows("v2"))
    }

    @Test func aResentDeltaBatchIsADuplicateAndTheContextStaysInStep() async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000) - 60_000
        let batches = Self.oneSecondBatches(count: 4, startMs: now)
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = IngestSessionTests.session(store)
        _ = await s.handle(IngestSessionTests.hello())
        var encoder = DeltaEncoder()
        for seq in [1, 2, 2, 3, 1, 4] as [UInt64] {   // the agent resends 2 and 1 (coded again, against the context)
            let deltaEncoded = encoder.encode(epoch: Self.epoch, sequence: seq, payload: batches[Int(seq) - 1])
            let delta = try #require(deltaEncoded)
            let out = await s.handle(delta)
            guard case .send(.ack(let ack))? = out.first else { Issue.record("no ack for \(seq): \(out)"); return }
            #expect(ack.sequence == seq)
        }
        #expect(await store.stored.map(\.batch.sequence) == [1, 2, 3, 4])
        #expect(await store.stored.last?.batch.series.map(\.name) == ["memory_usage_mb", "trades_executed", "websocket_status"])
        // A self-contained batch in between does not move the context.
        let full = Frame.batch(try BatchFrame.make(bootEpoch: Self.epoch, sequence: 5, payload: batches[0])).encoded()
        #expect(IngestSessionTests.closeCode(await s.handle(full)) == nil)
        let nextEncoded = encoder.encode(epoch: Self.epoch, sequence: 6, payload: batches[3])
        let next = try #require(nextEncoded)
        guard case .send(.ack(let ack))? = await s.handle(next).first else { Issue.record("no ack for 6"); return }
        #expect(ack.sequence == 6 && ack.outcome == .stored)
    }

    @Test(arguments: [1, 2] as [UInt16])
    func aDeltaBatchOnAnOlderVersionIsAProtocolError(version: UInt16) async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = IngestSessionTests.session(store)
        _ = await s.handle(IngestSessionTests.hello(version: version))
        var encoder = DeltaEncoder()
        let deltaEncoded = encoder.encode(epoch: Self.epoch, sequence: 1, payload: Self.oneSecondBatches(count: 1, startMs: 1)[0])
        let delta = try #require(deltaEncoded)
        #expect(IngestSessionTests.closeCode(await s.handle(delta)) == .protocolError)
        #expect(await store.stored.isEmpty)
    }

    @Test func aMalformedDeltaBatchClosesWithBadBatchAndStoresNothing() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = IngestSessionTests.session(store)
        _ = await s.handle(IngestSessionTests.hello())
        // Refers to metric 5, which this connection never defined.
        let out = await s.handle(ByteBuffer(bytes: [0x09, 0x01, 7, 2, 1, 0, 2, 6, 0, 0, 0]))
        #expect(IngestSessionTests.closeCode(out) == .badBatch)
        #expect(await store.stored.isEmpty)
    }
}
