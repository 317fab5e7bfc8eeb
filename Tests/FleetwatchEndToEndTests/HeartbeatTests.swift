import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Testing

/// The hub's heartbeats, driven by its one ticker for all connections (`ConnectionTicker`), on a real hub: an agent
/// whose batches are acknowledged gets its acks, and an idle agent hears a heartbeat every interval and stays
/// connected.
/// It runs in the quiet phase (`scripts/test`), alone: in the main phase the suites beside it can hold its process
/// up for longer than two intervals, and the hub then rightly closes its silent agents.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"), .enabled(if: runsHereNow(.quiet)))
struct HeartbeatTests {
    @Test(.timeLimit(.minutes(3)))
    func idleAgentsHearHeartbeatsAndBusyOnesAcks() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["idle-bot", "busy-bot"], token: "secret", in: db)
        // Two seconds: a test process that the suites beside it hold up for a moment must not look silent (two intervals).
        let config = #"{"hub": {"heartbeat_interval": 2}}"#
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: config)
        defer { Task { await hub.kill(SIGTERM) } }

        // A batch every 300 ms: every one acknowledged.
        let busy = try await ProtocolClient.connect(port: hub.port, bot: "busy-bot", token: "secret")
        defer { busy.close() }
        var acked = 0
        for i in 0..<12 {
            var others: [Frame] = []
            let seq = try await busy.sendBatch(ProtocolClient.names("m", 0..<3))
            if await busy.ack(of: seq, until: .now + .seconds(20), others: &others) != nil { acked += 1 }
            if i < 11 { try await Task.sleep(for: .milliseconds(300)) }
        }
        #expect(acked == 12)

        // No batches for ten seconds. The agent sends a heartbeat of its own every half second (as an agent does
        // when it has sent nothing for a while), so the hub never finds it silent; the hub, which has nothing else to
        // send, sends a heartbeat every interval.
        let idle = try await ProtocolClient.connect(port: hub.port, bot: "idle-bot", token: "secret")
        defer { idle.close() }
        var heartbeats = 0
        var closed: RawWebSocket.CloseOutcome?
        let end = ContinuousClock.now + .seconds(10)
        var sent = ContinuousClock.now
        reading: while ContinuousClock.now < end {
            if ContinuousClock.now - sent >= .milliseconds(500) {
                _ = await idle.send(.heartbeat(Heartbeat(sentAtMs: UInt64(Date().timeIntervalSince1970 * 1000))))
                sent = .now
            }
            switch await idle.next(until: min(end, sent + .milliseconds(500))) {
            case .frame(.heartbeat): heartbeats += 1
            case .frame, .closed(.timedOut): continue
            case .closed(let outcome):
                closed = outcome
                break reading
            }
        }
        #expect(closed == nil, "the idle agent was closed: \(String(describing: closed))")
        // One every two seconds (the ticker looks every 500 ms): four or five in ten seconds; three allows a slow machine.
        #expect(heartbeats >= 3, "the idle agent heard \(heartbeats) heartbeats in 10 s")

        // Still connected: its first batch is stored and acknowledged.
        var others: [Frame] = []
        let seq = try await idle.sendBatch(ProtocolClient.names("m", 0..<3))
        #expect(await idle.ack(of: seq, until: .now + .seconds(20), others: &others) != nil)
    }
}
