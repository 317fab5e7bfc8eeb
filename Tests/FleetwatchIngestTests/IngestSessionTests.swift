import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import Synchronization
import Testing

@Suite struct IngestSessionTests {
    static let epoch: UInt64 = 1_764_072_000_000_000

    static func session(_ store: InMemoryIngestStore, _ configure: (inout IngestConfiguration) -> Void = { _ in }) -> IngestSession {
        var c = IngestConfiguration()
        configure(&c)
        return IngestSession(configuration: c, store: store, remote: "test", logger: Logger(label: "test"))
    }

    static func hello(bot: String = "bot-1", token: String = "secret", version: UInt16 = WireProtocol.version) -> ByteBuffer {
        Frame.hello(Hello(protocolVersion: version, botID: bot, token: token, agentVersion: "t", bootEpoch: epoch,
                          lastAckedSequence: 0)).encoded()
    }

    static func batch(_ seq: UInt64, values: [Double] = [1, 2], timestamps: [Int64]? = nil) throws -> ByteBuffer {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let ts = timestamps ?? values.indices.map { now - Int64($0) }
        let payload = BatchPayload(series: [Series(name: "m", kind: .gauge, timestamps: ts, values: values)])
        return Frame.batch(try BatchFrame.make(bootEpoch: epoch, sequence: seq, payload: payload)).encoded()
    }

    static func closeCode(_ out: [IngestOutput]) -> CloseCode? {
        if case .close(let code, _)? = out.last { return code }
        return nil
    }

    @Test func helloWelcomeBatchAckAndDuplicate() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = Self.session(store)
        let welcome = await s.handle(Self.hello(version: 1))
        guard case .send(.welcome(let w))? = welcome.first else { Issue.record("no welcome: \(welcome)"); return }
        #expect(w.bootEpoch == Self.epoch && w.storedSequence == 0 && w.protocolVersion == 1)
        #expect(await s.handle(try Self.batch(1)) == [.send(.ack(Ack(bootEpoch: Self.epoch, sequence: 1, outcome: .stored)))])
        #expect(await s.handle(try Self.batch(1)) == [.send(.ack(Ack(bootEpoch: Self.epoch, sequence: 1, outcome: .duplicate)))])
        #expect(await store.stored.count == 1)
        // A reconnect learns what is stored.
        let again = await Self.session(store).handle(Self.hello())
        guard case .send(.welcome(let w2))? = again.first else { Issue.record("no welcome"); return }
        #expect(w2.storedSequence == 1)
    }

    @Test(arguments: [("bot-1", "wrong"), ("nobody", "secret")])
    func wrongTokenOrUnknownBot(bot: String, token: String) async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let out = await Self.session(store).handle(Self.hello(bot: bot, token: token))
        #expect(Self.closeCode(out) == .authenticationFailed)
    }

    @Test func firstFrameMustBeHello() async throws {
        let out = await Self.session(InMemoryIngestStore(tokens: [:])).handle(try Self.batch(1))
        #expect(Self.closeCode(out) == .helloExpected)
    }

    @Test func unknownVersionIsRefused() async throws {
        var hello = Self.hello()
        hello.setInteger(UInt16(9), at: 1, endianness: .little)
        let out = await Self.session(InMemoryIngestStore(tokens: ["bot-1": "secret"])).handle(hello)
        #expect(Self.closeCode(out) == .unsupportedVersion)
    }

    @Test func badBatchesCloseWithTheirReason() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        var raw = ByteBuffer()
        raw.writeRepeatingByte(0, count: 8 << 20)
        let bomb = Frame.batch(BatchFrame(bootEpoch: Self.epoch, sequence: 1, sampleCount: 1, rawLength: 1000,
                                          compressed: try Zlib.compress(raw))).encoded()
        let garbage = Frame.batch(BatchFrame(bootEpoch: Self.epoch, sequence: 1, sampleCount: 1, rawLength: 10,
                                             compressed: ByteBuffer(bytes: [1, 2, 3, 4]))).encoded()
        var huge = try Self.batch(1)
        huge.writeRepeatingByte(7, count: 2 << 20)
        for (message, code) in [(bomb, CloseCode.payloadTooLarge), (garbage, .badBatch), (huge, .frameTooLarge)] {
            let s = Self.session(store)
            _ = await s.handle(Self.hello())
            #expect(Self.closeCode(await s.handle(message)) == code)
        }
        #expect(await store.stored.isEmpty)
    }

    /// Anything wrong inside a batch closes with 4005, the code on which the agent drops that batch.
    @Test func malformedBatchContentIsABadBatch() async throws {
        var raw = ByteBuffer()
        raw.writeVarint(0); raw.writeVarint(1); raw.writeWireString("bad name!")
        raw.writeInteger(MetricKind.gauge.rawValue); raw.writeVarint(1); raw.writeZigzag(0)
        raw.writeInteger(UInt8(1)); raw.writeInteger(UInt8(0)); raw.writeZigzag(1)
        let frame = Frame.batch(BatchFrame(bootEpoch: Self.epoch, sequence: 1, sampleCount: 1, rawLength: UInt32(raw.readableBytes),
                                           compressed: try Zlib.compress(raw))).encoded()
        let s = Self.session(InMemoryIngestStore(tokens: ["bot-1": "secret"]))
        _ = await s.handle(Self.hello())
        let code = Self.closeCode(await s.handle(frame))
        #expect(code == .badBatch)
        #expect(code?.dropsOffendingBatch == true)
    }

    @Test func refusedSamplesAreDroppedButTheBatchIsAcked() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = Self.session(store)
        _ = await s.handle(Self.hello())
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let out = await s.handle(try Self.batch(1, values: [1, .nan, .infinity, 4, 5],
                                                timestamps: [now, now, now, now - 8 * 86_400_000, now + 3_600_000]))
        #expect(out == [.send(.ack(Ack(bootEpoch: Self.epoch, sequence: 1, outcome: .stored, refusedSamples: 4,
                                        refusals: .invalidValue)))])
        let stored = try #require(await store.stored.first)
        #expect(stored.batch.sentSamples == 5)
        #expect(stored.batch.refusedSamples == 4)
        #expect(stored.batch.series[0].values == [1])
        // A v1 agent gets the v1 ack (18 bytes, no refusal count): it would not understand more.
        let v1 = Self.session(store)
        _ = await v1.handle(Self.hello(version: 1))
        #expect(await v1.handle(try Self.batch(2, values: [.nan, 2])) == [.send(.ack(Ack(bootEpoch: Self.epoch, sequence: 2, outcome: .stored)))])
    }

    @Test func welcomeSpeaksTheHelloVersion() async throws {
        for version in WireProtocol.supportedVersions {
            let out = await Self.session(InMemoryIngestStore(tokens: ["bot-1": "secret"])).handle(Self.hello(version: version))
            guard case .send(.welcome(let w))? = out.first else { Issue.record("no welcome: \(out)"); continue }
            #expect(w.protocolVersion == version)
        }
    }

    /// Names past the bot's limit are left out of the batch, which is stored and acknowledged with the count;
    /// what is left (and only that) reaches the alert engine and the live values.
    @Test func namesOverTheBotsLimitAreRefusedAndReported() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"], maxNamesPerBot: 2)
        let seen = Mutex<[ValidatedBatch]>([])
        let s = IngestSession(configuration: IngestConfiguration(), store: store, remote: "test", logger: Logger(label: "test"),
                              onStored: { _, batch in seen.withLock { $0.append(batch) } })
        _ = await s.handle(Self.hello())
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let series = (0..<5).map { Series(name: "m\($0)", kind: .gauge, timestamps: [now, now - 1], values: [1, 2]) }
        let frame = Frame.batch(try BatchFrame.make(bootEpoch: Self.epoch, sequence: 1, payload: BatchPayload(series: series))).encoded()
        #expect(await s.handle(frame) == [.send(.ack(Ack(bootEpoch: Self.epoch, sequence: 1, outcome: .stored, refusedSamples: 6,
                                                         refusals: .metricNameLimit)))])
        let batch = try #require(seen.withLock { $0.first })
        #expect(batch.series.map(\.name) == ["m0", "m1"])
        #expect(batch.overLimitSamples == 6 && batch.overLimitNameCount == 3 && batch.overLimitNames == ["m2", "m3", "m4"])
        #expect(batch.storedSamples == 4)
        #expect(try #require(await store.stored.first).batch.series.count == 2)
    }

    @Test func storageDownMeansNoAck() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = Self.session(store)
        _ = await s.handle(Self.hello())
        await store.setFailing(true)
        #expect(Self.closeCode(await s.handle(try Self.batch(1))) == .storageUnavailable)
    }

    @Test func aDeferredBatchHoldsBackEveryLaterAckButIsEvaluated() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let evaluated = Mutex<[Double]>([])
        let s = IngestSession(configuration: IngestConfiguration(), store: store, remote: "test", logger: Logger(label: "test"),
                              onStored: { _, batch in evaluated.withLock { $0 += batch.series.flatMap(\.values) } })
        _ = await s.handle(Self.hello())
        guard case .send(.ack(let ack))? = await s.handle(try Self.batch(1, values: [1])).first else { Issue.record("no ack"); return }
        #expect(ack.sequence == 1 && ack.outcome == .stored)
        await store.setDeferring(true)
        #expect(await s.handle(try Self.batch(2, values: [2])).isEmpty)      // no ack, no close: the connection stays
        await store.setDeferring(false)
        // The database is back, but an ack of 3 would acknowledge 2 as well (acks are cumulative): 3 waits too.
        #expect(await s.handle(try Self.batch(3, values: [3])).isEmpty)
        #expect(s.deferredBatches == 2)
        #expect(await store.stored.map(\.batch.sequence) == [1])
        #expect(evaluated.withLock { $0 } == [1, 2, 3])                     // alerts saw every batch on arrival
    }

    /// The agent drops its oldest unacknowledged batch on 4003/4004/4005. After a deferral that is a good batch, so
    /// the connection closes with 4010 instead (the agent keeps everything); once the database is back, the good
    /// batches are stored and acknowledged first and the bad one, then the oldest, is refused with 4005.
    @Test func aBadBatchAfterADeferredOneClosesSoThatTheAgentKeepsBoth() async throws {
        var raw = ByteBuffer()
        raw.writeRepeatingByte(0, count: 8 << 20)
        let bomb = { (seq: UInt64) in Frame.batch(BatchFrame(bootEpoch: Self.epoch, sequence: seq, sampleCount: 1, rawLength: 1000,
                                                             compressed: try Zlib.compress(raw))).encoded() }
        let garbage = { (seq: UInt64) in Frame.batch(BatchFrame(bootEpoch: Self.epoch, sequence: seq, sampleCount: 1, rawLength: 10,
                                                                compressed: ByteBuffer(bytes: [1, 2, 3, 4]))).encoded() }
        for (bad, refusal) in [(garbage, CloseCode.badBatch), (bomb, .payloadTooLarge)] {
            for together in [false, true] {
                let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
                let s = Self.session(store)
                _ = await s.handle(Self.hello())
                await store.setDeferring(true)
                let out = together ? await s.handle([try Self.batch(1), try bad(2)])
                                   : (await s.handle(try Self.batch(1))) + (await s.handle(try bad(2)))
                #expect(Self.closeCode(out) == .storageUnavailable, "\(refusal), together: \(together): \(out)")
                #expect(s.deferredBatches == 1)

                // The database is back; the agent connects again and sends both.
                await store.setDeferring(false)
                let again = Self.session(store)
                _ = await again.handle(Self.hello())
                let resent = await again.handle([try Self.batch(1), try bad(2)])
                guard case .send(.ack(let ack))? = resent.first else { Issue.record("no ack: \(resent)"); continue }
                #expect(ack.sequence == 1 && ack.outcome == .stored, "\(resent)")
                #expect(Self.closeCode(resent) == refusal, "\(resent)")
                #expect(await store.stored.map(\.batch.sequence) == [1])
            }
        }
        // Without a deferral the refusal is the agent's to act on at once.
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = Self.session(store)
        _ = await s.handle(Self.hello())
        #expect(Self.closeCode(await s.handle([try Self.batch(1), try garbage(2)])) == .badBatch)
        #expect(s.closeKeepingDeferred(.messageTooBig, "x").0 == .messageTooBig)
    }

    @Test func aNewerConnectionReplacesTheOlder() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let old = Self.session(store), new = Self.session(store)
        _ = await old.handle(Self.hello())
        _ = await new.handle(Self.hello())
        #expect(Self.closeCode(await old.handle(try Self.batch(1))) == .replaced)
        #expect(Self.closeCode(await new.handle(try Self.batch(1))) == nil)
    }

    @Test func textFramesAreRefused() async {
        #expect(Self.closeCode(await Self.session(InMemoryIngestStore(tokens: [:])).handleText()) == .protocolError)
    }
}

@Suite struct IngestSessionMachineTests {
    @Test func helloTimeoutHeartbeatsAndSilence() {
        let clock = ManualClock()
        var m = IngestSessionMachine(nowMs: clock.nowMs, heartbeatMs: 1000, helloTimeoutMs: 5000)
        clock.advance(ms: 5001)
        guard case .close(.helloExpected, _) = m.tick(nowMs: clock.nowMs) else { Issue.record("no hello timeout"); return }

        var s = IngestSessionMachine(nowMs: clock.nowMs, heartbeatMs: 1000, helloTimeoutMs: 5000)
        let hello = Hello(botID: "b", token: "t", agentVersion: "v", bootEpoch: 1, lastAckedSequence: 0)
        #expect(s.received(.hello(hello), nowMs: clock.nowMs) == .authenticate(hello))
        s.authenticated(nowMs: clock.nowMs)
        clock.advance(ms: 1000)
        #expect(s.tick(nowMs: clock.nowMs) == .sendHeartbeat)
        s.sent(nowMs: clock.nowMs)
        #expect(s.received(.heartbeat(Heartbeat(sentAtMs: 0)), nowMs: clock.nowMs) == .ignore)
        clock.advance(ms: 2001)
        guard case .close(.heartbeatTimeout, _) = s.tick(nowMs: clock.nowMs) else { Issue.record("no silence close"); return }
    }

    @Test func agentMayNotSendHubFrames() {
        var m = IngestSessionMachine(nowMs: 0, heartbeatMs: 1000, helloTimeoutMs: 5000)
        _ = m.received(.hello(Hello(botID: "b", token: "t", agentVersion: "v", bootEpoch: 1, lastAckedSequence: 0)), nowMs: 0)
        m.authenticated(nowMs: 0)
        guard case .close(.protocolError, _) = m.received(.ack(Ack(bootEpoch: 1, sequence: 1, outcome: .stored)), nowMs: 0) else {
            Issue.record("ack from agent accepted")
            return
        }
    }
}

@Suite struct IngestSessionCommandTests {
    static let command = CommandFrame(commandID: CommandID(bytes: (0..<16).map(UInt8.init))!, botID: "bot-1", issuedAtMs: 1, expiresAtMs: 2,
                                      actions: .emergencyStop, reason: "latched")

    static func session(_ channel: InMemoryCommandChannel) -> IngestSession {
        IngestSession(configuration: IngestConfiguration(), store: InMemoryIngestStore(tokens: ["bot-1": "secret"]), remote: "test",
                      logger: Logger(label: "test"), commands: channel)
    }

    @Test func openCommandsFollowTheWelcomeAndReportsReachTheLedger() async throws {
        let channel = InMemoryCommandChannel(onConnect: [Self.command])
        let s = Self.session(channel)
        let out = await s.handle(IngestSessionTests.hello())
        guard out.count == 2, case .send(.welcome) = out[0], case .send(.command(let c)) = out[1] else {
            Issue.record("expected welcome then the open command: \(out)"); return
        }
        #expect(c == Self.command)
        let result = CommandResultFrame(commandID: Self.command.commandID, step: 1, status: .succeeded, atMs: 3, detail: "stopped")
        #expect(await s.handle(Frame.commandResult(result).encoded()).isEmpty)
        #expect(await channel.results == [result])
        // A declaration is answered with a command frame of the same id (the confirmation).
        let declaration = EmergencyDeclaration(commandID: CommandID(bytes: (16..<32).map(UInt8.init))!, declaredAtMs: 5, actions: .emergencyStop, reason: "mine")
        let confirmation = await s.handle(Frame.emergencyDeclaration(declaration).encoded())
        guard case .send(.command(let echo))? = confirmation.first else { Issue.record("no confirmation: \(confirmation)"); return }
        #expect(echo.commandID == declaration.commandID && echo.botID == "bot-1")
    }

    @Test func aLedgerOutageNeitherClosesTheConnectionNorConfirms() async throws {
        let channel = InMemoryCommandChannel()
        let s = Self.session(channel)
        _ = await s.handle(IngestSessionTests.hello())
        await channel.setFailing(true)
        let result = CommandResultFrame(commandID: Self.command.commandID, step: 0, status: .received, atMs: 3, detail: "")
        #expect(await s.handle(Frame.commandResult(result).encoded()).isEmpty)
        let declaration = EmergencyDeclaration(commandID: CommandID(bytes: (16..<32).map(UInt8.init))!, declaredAtMs: 5, actions: .emergencyStop, reason: "mine")
        #expect(await s.handle(Frame.emergencyDeclaration(declaration).encoded()).isEmpty, "unconfirmed: the agent sends it again")
        // The session still stores batches.
        #expect(await s.handle(try IngestSessionTests.batch(1)).count == 1)
    }

    @Test func beforeTheWelcomeCommandFramesAreRefused() async throws {
        let s = Self.session(InMemoryCommandChannel())
        let declaration = EmergencyDeclaration(commandID: CommandID(bytes: (16..<32).map(UInt8.init))!, declaredAtMs: 5, actions: .emergencyStop, reason: "x")
        let out = await s.handle(Frame.emergencyDeclaration(declaration).encoded())
        #expect(IngestSessionTests.closeCode(out) == .helloExpected)
    }
}

/// The store-duration observer is called as often as the hub likes without getting slower: a closure
/// kept in a Mutex used to gain a reabstraction thunk on every call (the hub slowed down over hours).
@Test func theStoreObserverDoesNotGrowWithUse() {
    let counters = IngestCounters()
    let calls = Mutex(0)
    counters.observeStoreDurations { _ in calls.withLock { $0 += 1 } }
    for _ in 0..<200_000 { counters.storeTook(.milliseconds(1)) }
    #expect(calls.withLock { $0 } == 200_000)
}
