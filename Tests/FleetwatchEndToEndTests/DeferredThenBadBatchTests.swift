import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import Testing

/// Against a real hub and a PostgreSQL that stops and starts: a good batch deferred during the outage, then a
/// batch the hub must refuse. The agent drops its oldest unacknowledged batch on 4005, which would be the good
/// one; the hub closes with 4010 instead, and once the database is back the good batch is stored and the bad
/// one refused.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct DeferredThenBadBatchTests {
    /// Reads until the hub closes (answering pings and heartbeats as an agent does): the close's code and reason,
    /// and the acks before it.
    static func closing(_ client: ProtocolClient, until deadline: ContinuousClock.Instant) async -> (code: UInt16?, reason: String, acks: [Ack]) {
        var acks: [Ack] = []
        while true {
            switch await client.ws.nextFrame(until: deadline) {
            case .frame(let f) where f.opcode == 0x8:
                let code = f.payload.count >= 2 ? UInt16(f.payload[0]) << 8 | UInt16(f.payload[1]) : nil
                return (code, String(decoding: f.payload.dropFirst(2), as: UTF8.self), acks)
            case .frame(let f) where f.opcode == 0x9:
                _ = await client.ws.send(opcode: 0xA, fin: true, payload: f.payload)
            case .frame(let f) where f.opcode == 0x2:
                switch try? Frame.decode(ByteBuffer(bytes: f.payload)) {
                case .ack(let a)?: acks.append(a)
                case .heartbeat?: _ = await client.send(.heartbeat(Heartbeat(sentAtMs: UInt64(Date().timeIntervalSince1970 * 1000))))
                default: break
                }
            case .frame: continue
            case .ended(let outcome): return (nil, "\(outcome)", acks)
            }
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func aBadBatchAfterADeferredOneLosesNeither() async throws {
        let pg = PrivatePostgres.forTest("fw-defer-bad")
        try await pg.whileRunning { server in
            let db = try await TestDatabase.create(on: server, prefix: "fw_defer_bad_", logger: Logger(label: "t"))
            try await registerBots(["keep-bot"], token: "secret", in: db)
            let hub = try HubUnderTest(database: db)
            // The first connection is silent while PostgreSQL shuts down (a checkpoint, seconds on a busy machine):
            // 60 s of silence allowed instead of 10, so the hub closes it for what the test checks, not with 4008.
            try await hub.start(config: #"{"hub": {"heartbeat_interval": 30}}"#)
            defer { Task { await hub.kill(SIGTERM) } }

            let payload = { ProtocolClient.names("keep_metric_", 0..<5) }
            let first = try await ProtocolClient.connect(port: hub.port, bot: "keep-bot", token: "secret")
            var others: [Frame] = []
            #expect(await first.ack(of: try await first.sendBatch(payload()), until: .now + .seconds(30), others: &others)?.outcome == .stored)
            let good = try BatchFrame.make(bootEpoch: first.epoch, sequence: 2, payload: payload())
            let bad = Frame.batch(BatchFrame(bootEpoch: first.epoch, sequence: 3, sampleCount: 1, rawLength: 10,
                                             compressed: ByteBuffer(bytes: [1, 2, 3, 4])))

            // The database stops: batch 2 is deferred (no ack, the connection stays), then batch 3 cannot be read.
            try await pg.stop()
            #expect(await first.send(.batch(good)))
            #expect(await first.send(bad))
            let during = await Self.closing(first, until: .now + .seconds(60))
            first.close()
            #expect(during.code == CloseCode.storageUnavailable.rawValue, "\(during)")
            #expect(during.reason.contains("not stored yet") && during.reason.contains("4005"), "\(during)")
            #expect(during.acks.isEmpty, "nothing after the deferred batch is acknowledged: \(during.acks)")

            // The database is back; the agent connects again and sends both, oldest first.
            _ = try await pg.start()
            #expect(try await eventually(.seconds(60)) { try await HubUnderTest.httpGet(port: hub.port, path: "/health/ready") == 200 })
            // The welcome says what is stored: 1, or 2 when the deferred batch's statement committed after all while
            // its answer was lost with the connection (the ledger keeps it once either way). The agent sends the rest.
            let again = try await ProtocolClient.connect(port: hub.port, bot: "keep-bot", token: "secret", epoch: first.epoch)
            let stored = again.welcome.storedSequence
            #expect(stored == 1 || stored == 2, "\(stored)")
            if stored == 1 { #expect(await again.send(.batch(good))) }
            #expect(await again.send(bad))
            let after = await Self.closing(again, until: .now + .seconds(60))
            again.close()
            if stored == 1 { #expect(after.acks.map(\.sequence) == [2] && after.acks.first?.outcome == .stored, "\(after)") }
            #expect(after.code == CloseCode.badBatch.rawValue, "\(after)")
            #expect(try await BotIsolationTests.count(db, "SELECT count(DISTINCT seq) FROM samples") == 2)
            #expect(try await BotIsolationTests.count(db, "SELECT count(*) FROM samples WHERE seq = 3") == 0)
            #expect(hub.process?.isRunning == true)
        }
    }
}
