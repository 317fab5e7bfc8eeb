import FleetwatchAgent
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import NIOWebSocket
import Testing
import WSClient

/// Bad input over a real socket gets a clear close code and does not disturb a well-behaved bot.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct HostileInputTests {
    /// Opens a raw WebSocket, sends `frames`, returns the hub's close code.
    static func closeCode(_ url: String, frames: [WebSocketOutboundWriter.OutboundFrame]) async throws -> UInt16? {
        var logger = Logger(label: "raw")
        logger.logLevel = .critical
        let close = try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 24), logger: logger) { inbound, outbound, _ in
            for f in frames { try await outbound.write(f) }
            for try await _ in inbound.messages(maxSize: 1 << 20) {}
        }
        return close.map { UInt16(webSocketErrorCode: $0.closeCode) }
    }

    static func hello(_ bot: String, token: String, version: UInt16 = WireProtocol.version) -> WebSocketOutboundWriter.OutboundFrame {
        var b = Frame.hello(Hello(botID: bot, token: token, agentVersion: "raw", bootEpoch: 77, lastAckedSequence: 0)).encoded()
        b.setInteger(version, at: 1, endianness: .little)
        return .binary(b)
    }

    @Test(.timeLimit(.minutes(3)))
    func badInputIsRefusedWhileAGoodBotKeepsStreaming() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["good", "victim"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        let ledger = SealedLedger()
        let good = try EndToEndTests.agent("good", hub: hub.agentURL, ledger: ledger)
        let task = Task { try await good.run() }
        let streaming = Task {
            for round in 0..<200 where !Task.isCancelled {
                await EndToEndTests.trade(good, round: round)
                try? await Task.sleep(for: .milliseconds(10))
            }
        }

        var bomb = ByteBuffer()
        bomb.writeRepeatingByte(0, count: 32 << 20)
        let bombFrame = Frame.batch(BatchFrame(bootEpoch: 77, sequence: 1, sampleCount: 1, rawLength: 1024,
                                               compressed: try Zlib.compress(bomb))).encoded()
        var oversized = ByteBuffer()
        oversized.writeInteger(FrameType.batch.rawValue)
        oversized.writeRepeatingByte(1, count: 3 << 20)
        let cases: [(String, [WebSocketOutboundWriter.OutboundFrame], Set<UInt16>)] = [
            ("wrong token", [Self.hello("victim", token: "guess")], [CloseCode.authenticationFailed.rawValue]),
            ("unknown bot", [Self.hello("nobody", token: "secret")], [CloseCode.authenticationFailed.rawValue]),
            ("unknown protocol version", [Self.hello("victim", token: "secret", version: 99)], [CloseCode.unsupportedVersion.rawValue]),
            ("batch before hello", [.binary(bombFrame)], [CloseCode.helloExpected.rawValue]),
            ("zip bomb", [Self.hello("victim", token: "secret"), .binary(bombFrame)], [CloseCode.payloadTooLarge.rawValue]),
            ("garbage", [Self.hello("victim", token: "secret"), .binary(ByteBuffer(bytes: [3, 1, 2]))], [CloseCode.protocolError.rawValue]),
            ("text frame", [.text("{\"hello\": true}")], [CloseCode.protocolError.rawValue]),
            ("oversized frame", [Self.hello("victim", token: "secret"), .binary(oversized)], [CloseCode.messageTooBig.rawValue, CloseCode.frameTooLarge.rawValue]),
        ]
        for (name, frames, expected) in cases {
            let code = try await Self.closeCode(hub.agentURL, frames: frames)
            #expect(code.map { expected.contains($0) } == true, "\(name): got \(String(describing: code))")
        }
        streaming.cancel()
        _ = await streaming.value
        #expect(try await eventually { await EndToEndTests.drained([good]) })
        let sealed = ledger.all
        task.cancel()
        try await EndToEndTests.expectExactlyOnce(sealed, db)
        #expect(hub.log.contains("4002 authentication failed"))
        #expect(hub.process?.isRunning == true)
        await hub.kill(SIGTERM)
    }
}
