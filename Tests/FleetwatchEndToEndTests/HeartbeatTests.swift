import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Testing

/// The hub's heartbeats, driven by its one ticker for all connections (`ConnectionTicker`), on a real hub: an idle
/// agent hears one every interval and stays connected, beside an agent whose batches are acknowledged.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct HeartbeatTests {
    @Test(.timeLimit(.minutes(3)))
    func idleAgentsHearHeartbeatsAndBusyOnesAcks() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["idle-bot", "busy-bot"], token: "secret", in: db)
        let path = NSTemporaryDirectory() + "fw-heartbeat-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try #"{"hub": {"heartbeat_interval": 1}}"#.write(toFile: path, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", path])
        defer { Task { await hub.kill(SIGTERM) } }

        let idle = try await ProtocolClient.connect(port: hub.port, bot: "idle-bot", token: "secret")
        let busy = try await ProtocolClient.connect(port: hub.port, bot: "busy-bot", token: "secret")
        defer { idle.close(); busy.close() }

        // The idle agent answers each heartbeat, as an agent does, for five seconds.
        async let heard: (heartbeats: Int, closed: RawWebSocket.CloseOutcome?) = {
            var heartbeats = 0
            let end = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < end {
                switch await idle.next(until: end) {
                case .frame(.heartbeat):
                    heartbeats += 1
                    _ = await idle.send(.heartbeat(Heartbeat(sentAtMs: UInt64(Date().timeIntervalSince1970 * 1000))))
                case .frame: continue
                case .closed(.timedOut): return (heartbeats, nil)
                case .closed(let outcome): return (heartbeats, outcome)
                }
            }
            return (heartbeats, nil)
        }()
        // The busy agent sends a batch every 300 ms: its acks are all the hub needs to write.
        var acked = 0
        for i in 0..<12 {
            var others: [Frame] = []
            let seq = try await busy.sendBatch(ProtocolClient.names("m", 0..<3))
            if await busy.ack(of: seq, until: .now + .seconds(10), others: &others) != nil { acked += 1 }
            if i < 11 { try await Task.sleep(for: .milliseconds(300)) }
        }
        let (heartbeats, closed) = await heard
        #expect(closed == nil, "the idle agent was closed: \(String(describing: closed))")
        // One a second (ticks every 250 ms): four or five in five seconds; three allows a slow machine.
        #expect(heartbeats >= 3, "the idle agent heard \(heartbeats) heartbeats in 5 s")
        #expect(acked == 12)

        // Still connected: its next batch is stored and acknowledged.
        var others: [Frame] = []
        let seq = try await idle.sendBatch(ProtocolClient.names("m", 0..<3))
        #expect(await idle.ack(of: seq, until: .now + .seconds(10), others: &others) != nil)
    }
}
