import FleetwatchProtocol
import Foundation
import Logging
import NIOCore

/// What the transport must do for a session.
public enum IngestOutput: Sendable, Equatable {
    case send(Frame)
    case close(CloseCode, String)

    var isClose: Bool { if case .close = self { true } else { false } }
}

/// Drives one agent connection: decodes messages, authenticates, validates and stores batches, acks.
/// Used from a single task (the connection's); the transport feeds it messages and ticks.
public final class IngestSession {
    let configuration: IngestConfiguration
    let store: any IngestStore
    let logger: Logger
    let remote: String
    var machine: IngestSessionMachine
    public private(set) var session: BotSession?
    let connectionID = UUID()
    let counters: IngestCounters?
    let onStored: (@Sendable (BotSession, ValidatedBatch) -> Void)?
    let commands: (any CommandChannel)?
    /// Batches received while the database was unreachable and not acknowledged: the agent still holds them, and
    /// the hub asks it to reconnect and send them again once the database is back.
    public private(set) var deferredBatches = 0
    /// The protocol version of the hello (1 until then).
    public private(set) var protocolVersion: UInt16 = 1
    /// Protocol 3: what this connection's delta batches defined so far.
    var deltaDecoder = DeltaDecoder()
    /// The wall clock (frames' times, sample validation, heartbeats).
    let clock: any MillisecondClock
    /// Runs handed to the store whose answers were not taken yet, oldest first (at most `runsInFlight`).
    private var handedOver: [HandedOver] = []
    private var runsHandedOver = 0
    private let answers: RunAnswers
    /// Most runs handed to the store at once: `maxRunsInFlight` when the transport takes answers as they come
    /// (`onAnswer`), otherwise one (each run answered before `handle` returns).
    let runsInFlight: Int

    /// A run handed to the store (`IngestStore.submit`), waiting for its answer.
    struct HandedOver {
        let number: Int
        let run: [ValidatedBatch]
        let at: ContinuousClock.Instant
    }

    /// - Parameters:
    ///   - onStored: called after each newly stored batch (alert evaluation); must not block.
    ///   - commands: the emergency-command ledger; nil: command frames are ignored.
    ///   - onAnswer: called (from any thread) when the store answers a run the session is not waiting for; the
    ///     transport then calls `takeAnswers()`. Given, `handle` returns once its runs are handed over, up to
    ///     `maxRunsInFlight` at once, and their acks come from `takeAnswers()`; nil: `handle` returns their acks.
    public init(configuration: IngestConfiguration, store: any IngestStore, remote: String, logger: Logger,
                counters: IngestCounters? = nil, commands: (any CommandChannel)? = nil,
                onStored: (@Sendable (BotSession, ValidatedBatch) -> Void)? = nil,
                onAnswer: (@Sendable () -> Void)? = nil,
                clock: any MillisecondClock = SystemClock.wall) {
        answers = RunAnswers(wake: onAnswer)
        runsInFlight = onAnswer == nil ? 1 : Self.maxRunsInFlight
        self.clock = clock
        self.configuration = configuration
        self.store = store
        self.commands = commands
        self.remote = remote
        self.logger = logger
        self.counters = counters
        self.onStored = onStored
        machine = IngestSessionMachine(nowMs: clock.nowMs,
                                       heartbeatMs: configuration.heartbeatInterval.wholeMilliseconds,
                                       helloTimeoutMs: configuration.helloTimeout.wholeMilliseconds)
    }

    /// Handles one binary message from the agent.
    public func handle(_ message: ByteBuffer) async -> [IngestOutput] {
        await handle([message])
    }

    /// Most batches stored as one run.
    public static let maxRun = 64
    /// Most samples a run holds: runs are for the small batches of the one-second cadence. A larger batch is a run
    /// of its own. A connection holds at most `maxRunsInFlight` runs in the store, one run waiting to be handed over
    /// and the batch in hand.
    public static let maxRunSamples = 2_000

    /// Most runs of one connection handed to the store at once: while one is written, the next waits in the
    /// store's queue and goes into the statement after it, instead of waiting for the ack and the connection's turn.
    public static let maxRunsInFlight = 2

    /// Handles binary messages that waited on the connection together, in order. Batches of one epoch in
    /// increasing sequence order are stored as one run (one statement) and acknowledged with one cumulative ack;
    /// anything else (a command result, a declaration, a close) first finishes the batches before it. Returns the
    /// acks of the runs answered by then: all of them without `onAnswer`; with it, the rest come from `takeAnswers()`.
    public func handle(_ messages: [ByteBuffer]) async -> [IngestOutput] {
        keepingDeferred(await handleInOrder(messages))
    }

    /// The acks (or close) of the runs the store answered since, in order (`onAnswer`).
    public func takeAnswers() async -> [IngestOutput] {
        keepingDeferred(await finishRuns(waiting: false))
    }

    /// The transport closes the connection with `code`: first the answers of every run handed over (their acks go
    /// out before the close, and the close keeps deferred batches: `closeKeepingDeferred`).
    public func closing(_ code: CloseCode, _ reason: String) async -> [IngestOutput] {
        let before = await finishRuns(waiting: true)
        if before.contains(where: \.isClose) { return keepingDeferred(before) }
        let (safe, why) = closeKeepingDeferred(code, reason)
        log(safe, why)
        counters?.count(safe)
        return before + [.close(safe, why)]
    }

    /// `outputs` with any close made safe for deferred batches.
    private func keepingDeferred(_ outputs: [IngestOutput]) -> [IngestOutput] {
        guard deferredBatches > 0 else { return outputs }   // the usual case: nothing to change, no copy
        return outputs.map { output in
            guard case .close(let code, let reason) = output else { return output }
            let (safe, why) = closeKeepingDeferred(code, reason)
            return .close(safe, why)
        }
    }

    /// 4003, 4004, 4005 and 1009 make the agent drop its oldest unacknowledged batch: the offending one, since the
    /// hub acknowledges every batch before it. After a deferral (the database was unreachable) that is not so: the
    /// oldest is a good batch that is not stored yet, and nothing after it was acknowledged. Such a connection closes
    /// with 4010 instead: the agent keeps every batch and sends them again, and once the database is back the
    /// deferred ones are stored and acknowledged, and the bad one, now the oldest, is refused again and dropped.
    public func closeKeepingDeferred(_ code: CloseCode, _ reason: String) -> (CloseCode, String) {
        guard code.dropsOffendingBatch, deferredBatches > 0 else { return (code, reason) }
        logger.warning("bot \(session?.botName ?? "?"): \(code) (\(reason)) after \(deferredBatches) batch(es) not stored yet: closing with \(CloseCode.storageUnavailable) so that the agent keeps them")
        return (.storageUnavailable, "\(deferredBatches) batches not stored yet; send them again (then: \(code): \(reason))")
    }

    private func handleInOrder(_ messages: [ByteBuffer]) async -> [IngestOutput] {
        var outputs = await finishRuns(waiting: false)
        if outputs.contains(where: \.isClose) { return outputs }
        var run: [ValidatedBatch] = []
        var runSamples = 0
        for message in messages {
            let decision: IngestSessionMachine.Decision
            do {
                let frame = try Frame.decode(message, maxFrameBytes: configuration.maxFrameBytes)
                decision = machine.received(frame, nowMs: clock.nowMs)
            } catch let error as WireError {
                decision = machine.undecodable(error)
            } catch {
                decision = machine.undecodable(WireError(.truncated, "\(error)"))
            }
            let prepared: Prepared?
            switch decision {
            case .store(let frame): prepared = await prepare(frame)
            case .storeDelta(let frame): prepared = await prepare(frame)
            default: prepared = nil
            }
            if case .batch(let batch) = prepared, let last = run.last, last.epoch == batch.epoch, last.sequence < batch.sequence,
               run.count < Self.maxRun, runSamples + batch.sentSamples <= Self.maxRunSamples {
                run.append(batch)
                runSamples += batch.sentSamples
                continue
            }
            if !run.isEmpty {
                let done = await handOver(run)
                outputs += done
                run = []
                if done.contains(where: \.isClose) { return outputs }
            }
            let done: [IngestOutput]
            switch prepared {
            case .batch(let batch): run = [batch]; runSamples = batch.sentSamples; continue
            // A close for a bad batch makes the agent drop its oldest unacknowledged batch: the runs before it are
            // answered (and acknowledged) first.
            case .outputs(let o): done = o.isEmpty ? o : await afterRuns { o }
            case nil:
                if case .ignore = decision { continue }   // a heartbeat: the runs handed over stay in flight
                done = await afterRuns { await perform(decision) }
            }
            outputs += done
            if done.contains(where: \.isClose) { return outputs }
        }
        if !run.isEmpty {
            let done = await handOver(run)
            outputs += done
            if done.contains(where: \.isClose) { return outputs }
        }
        return outputs + (await finishRuns(waiting: runsInFlight == 1))
    }

    /// `then`'s outputs after the answers of every run handed over: a command result, a declaration or a close comes
    /// after the batches before it.
    private func afterRuns(_ then: () async -> [IngestOutput]) async -> [IngestOutput] {
        let before = await finishRuns(waiting: true)
        return before.contains(where: \.isClose) ? before : before + (await then())
    }

    /// A text message or other non-binary input.
    public func handleText() async -> [IngestOutput] {
        guard case .close(let code, let reason) = machine.undecodable(WireError(.unknownFrameType, "text frames are not part of the protocol"))
        else { return [] }
        // As every close: the acks of the runs still being written go out first (the agent need not send them again).
        return await closing(code, reason)
    }

    /// Periodic: heartbeats and timeouts. `heardAtMs`: when the transport last read anything from the agent
    /// (messages may wait behind a slow store; that wait is the hub's, not the agent's silence).
    public func tick(heardAtMs: Int64? = nil) async -> [IngestOutput] {
        if let heardAtMs { machine.heard(atMs: heardAtMs) }
        switch machine.tick(nowMs: clock.nowMs) {
        case .none: return []
        case .sendHeartbeat:
            machine.sent(nowMs: clock.nowMs)
            return [.send(.heartbeat(Heartbeat(sentAtMs: UInt64(clock.nowMs))))]
        case .close(let code, let reason):
            // As every close: the acks of the runs still being written go out first.
            return await closing(code, reason)
        }
    }

    /// The connection ended: give the bot's lease back, once the runs it handed over are answered (written while the
    /// lease is still this connection's, as if the connection had stored them before it ended; their acks can no longer
    /// be sent, and the agent sends them again).
    public func finish() async {
        _ = await finishRuns(waiting: true)
        if let session { await store.release(session) }
    }

    private func perform(_ decision: IngestSessionMachine.Decision) async -> [IngestOutput] {
        switch decision {
        case .ignore:
            return []
        case .commandResult(let result):
            return await record(result)
        case .declaration(let declaration):
            return await declare(declaration)
        case .close:
            return closeOutput(decision)
        case .authenticate(let hello):
            return await authenticate(hello)
        case .store, .storeDelta:
            return []   // `handle` prepares and stores batches itself
        }
    }

    private func authenticate(_ hello: Hello) async -> [IngestOutput] {
        guard hello.bootEpoch <= UInt64(Int64.max) else {
            return closeOutput(machine.undecodable(WireError(.invalidField, "boot epoch above 2^63")))
        }
        do {
            switch try await store.authenticate(hello, connectionID: connectionID, hub: configuration.hubID) {
            case .refused(let why):
                logger.warning("refused agent from \(remote) claiming bot '\(hello.botID)': \(why)")
                return closeOutput(machine.refused())
            case .accepted(let s):
                session = s
                protocolVersion = hello.protocolVersion
                machine.authenticated(nowMs: clock.nowMs)
                logger.info("bot \(s.botName) connected from \(remote), agent \(hello.agentVersion), epoch \(s.epoch), stored up to \(s.storedSequence)")
                let l = configuration.limits
                let welcome = IngestOutput.send(.welcome(Welcome(
                    protocolVersion: hello.protocolVersion, bootEpoch: s.epoch, storedSequence: s.storedSequence,
                    heartbeatIntervalMs: UInt32(configuration.heartbeatInterval.wholeMilliseconds),
                    maxFrameBytes: UInt32(configuration.maxFrameBytes), maxPayloadBytes: UInt32(l.maxPayloadBytes),
                    maxSamplesPerBatch: UInt32(l.maxSamples))))
                return [welcome] + (await commandsOnConnect(s))
            }
        } catch {
            logger.error("cannot authenticate bot '\(hello.botID)': storage failed: \(String(reflecting: error))")
            return closeOutput(.close(.storageUnavailable, "storage unavailable"))
        }
    }

    private func commandsOnConnect(_ s: BotSession) async -> [IngestOutput] {
        guard let commands else { return [] }
        do {
            let frames = try await commands.commandsOnConnect(s)
            if !frames.isEmpty { logger.notice("bot \(s.botName): sending \(frames.count) open or latched command(s) on connect") }
            return frames.map { .send(.command($0)) }
        } catch {
            // The command stays in the ledger; the dispatcher's periodic pass sends it.
            logger.error("bot \(s.botName): cannot read its commands: \(String(reflecting: error))")
            return []
        }
    }

    private func record(_ result: CommandResultFrame) async -> [IngestOutput] {
        guard let session, let commands else { return [] }
        do {
            try await commands.record(result, session: session)
        } catch {
            // Not lost: the command stays unfinished, is sent again on the next connection, and the agent
            // answers a known command with its results again.
            logger.error("bot \(session.botName): command result not recorded: \(String(reflecting: error))")
        }
        return []
    }

    private func declare(_ declaration: EmergencyDeclaration) async -> [IngestOutput] {
        guard let session, let commands else { return [] }
        do {
            guard let confirmation = try await commands.declare(declaration, session: session) else {
                return closeOutput(.close(.replaced, "another connection took over bot \(session.botName); declaration not recorded"))
            }
            logger.critical("bot \(session.botName) declared an emergency: \(declaration.reason)")
            return [.send(.command(confirmation))]
        } catch {
            logger.error("bot \(session.botName): emergency declaration not recorded (the agent sends it again): \(String(reflecting: error))")
            return []
        }
    }

    /// A batch message, prepared: the batch to store, or what to do instead (nothing before the hello, or a
    /// close for a batch that cannot be stored).
    enum Prepared {
        case batch(ValidatedBatch)
        case outputs([IngestOutput])
    }

    private func prepare(_ frame: BatchFrame) async -> Prepared {
        guard session != nil else { return .outputs([]) }
        guard frame.sequence <= UInt64(Int64.max), frame.bootEpoch <= UInt64(Int64.max) else {
            return .outputs(closeOutput(machine.undecodable(WireError(.invalidField, "sequence or epoch above 2^63"))))
        }
        do {
            return await prepare(epoch: frame.bootEpoch, sequence: frame.sequence, payload: try frame.inflate(limits: configuration.limits))
        } catch {
            return .outputs(refuseBatch(error))
        }
    }

    private func prepare(_ frame: DeltaBatchFrame) async -> Prepared {
        guard session != nil else { return .outputs([]) }
        guard protocolVersion >= WireProtocol.deltaBatchVersion else {
            return .outputs(closeOutput(machine.undecodable(WireError(.invalidField, "delta batches need protocol 3; this connection speaks \(protocolVersion)"))))
        }
        do {
            let batch = try deltaDecoder.decode(frame, limits: configuration.limits)
            return await prepare(epoch: batch.bootEpoch, sequence: batch.sequence, payload: batch.payload)
        } catch {
            return .outputs(refuseBatch(error))
        }
    }

    /// Whatever is wrong inside a batch, the agent must drop that batch rather than resend it forever:
    /// 4003/4004 keep their meaning, everything else becomes 4005.
    private func refuseBatch(_ error: any Error) -> [IngestOutput] {
        guard let error = error as? WireError else {
            return closeOutput(machine.undecodable(WireError(.corruptPayload, "\(error)")))
        }
        let code = error.closeCode == .payloadTooLarge ? error : WireError(.corruptPayload, error.detail)
        return closeOutput(machine.undecodable(code))
    }

    /// Validates a batch and admits its names.
    private func prepare(epoch: UInt64, sequence: UInt64, payload: BatchPayload) async -> Prepared {
        guard let session else { return .outputs([]) }
        let checked = configuration.validator.validate(epoch: epoch, sequence: sequence, payload: payload, nowMs: clock.nowMs)
        if checked.refusedSamples > 0 {
            logger.warning("bot \(session.botName) batch \(epoch)/\(sequence): refused \(checked.refusedSamples) samples (non-finite value or timestamp outside the accepted window)")
        }
        do {
            // A bot's usual batch is answered at once, without suspending (the store's `admitWithoutWaiting`).
            let batch = try await store.admit(checked, session: session)
            if batch.overLimitSamples > 0 {
                logger.warning("bot \(session.botName) batch \(epoch)/\(sequence): refused \(batch.overLimitSamples) samples of \(batch.overLimitNameCount) metric names over the bot's name limit (\(batch.overLimitNames.prefix(3).joined(separator: ", ")))")
            }
            return .batch(batch)
        } catch {
            return .outputs(storeFailed(error, epoch: epoch, sequence: sequence, session: session))
        }
    }

    /// Hands a run of prepared batches (one epoch, increasing sequences) to the store, once there is room: at most
    /// `runsInFlight` runs at once, and a run of another epoch (the store keeps runs in order within one stream) or
    /// one not admitted only after every run before it is answered. Returns the answers it waited for.
    private func handOver(_ run: [ValidatedBatch]) async -> [IngestOutput] {
        guard let session else { return [] }
        var outputs: [IngestOutput] = []
        // A run not admitted (its names could not be looked up: the database went away) is stored through a path that
        // does not check `after`, so it is handed over alone.
        let alone = !run.allSatisfy(\.isAdmitted)
        while let last = handedOver.last, alone || handedOver.count >= runsInFlight || last.run[0].epoch != run[0].epoch {
            outputs += await finishRuns(waiting: true, atMost: 1)
            if outputs.contains(where: \.isClose) { return outputs }
        }
        // Acks are cumulative: after one deferred batch, nothing later on this connection may be acknowledged
        // (it would acknowledge the deferred one too). The rest waits for the reconnect as well, in order.
        if deferredBatches > 0 {
            outputs += await finishRuns(waiting: true)
            if outputs.contains(where: \.isClose) { return outputs }
            return outputs + (await settle(run, .success(run.map { _ in .deferred })))
        }
        // Stored only if the run before it is (the store answers `.deferred` otherwise): never past a failed run.
        let after = handedOver.last?.run.last?.sequence
        let number = runsHandedOver
        runsHandedOver += 1
        handedOver.append(HandedOver(number: number, run: run, at: .now))
        await store.submit(run: run, session: session, after: after) { [answers] in answers.deliver(number, $0) }
        return outputs
    }

    /// Takes the answers of the runs handed over, oldest first: those that came (`waiting` false), or each in turn as
    /// it comes; at most `atMost`. After a close the rest are dropped (their batches were not acknowledged).
    private func finishRuns(waiting: Bool, atMost: Int = .max) async -> [IngestOutput] {
        var outputs: [IngestOutput] = []
        var taken = 0
        while taken < atMost, let head = handedOver.first {
            let answer: RunAnswers.Answer
            if waiting {
                answer = await answers.wait(for: head.number)
            } else {
                guard let ready = answers.take(head.number) else { break }
                answer = ready
            }
            handedOver.removeFirst()
            taken += 1
            counters?.storeTook(answer.at - head.at)
            outputs += await settle(head.run, answer.result)
            if outputs.contains(where: \.isClose) {
                handedOver.removeAll()
                break
            }
        }
        return outputs
    }

    /// Stores a run before returning and acknowledges it (a run retried batch by batch).
    private func storeNow(_ run: [ValidatedBatch]) async -> [IngestOutput] {
        guard let session, deferredBatches == 0 else { return await settle(run, .success(run.map { _ in .deferred })) }
        let result: Result<[StoreOutcome], any Error>
        do { result = .success(try await store.store(run: run, session: session)) } catch { result = .failure(error) }
        return await settle(run, result)
    }

    /// Acknowledges a run the store answered: one ack for the last, acks being cumulative, and one for each batch
    /// whose refusals or duplicate outcome the agent must hear about; or the close its failure calls for.
    private func settle(_ run: [ValidatedBatch], _ result: Result<[StoreOutcome], any Error>) async -> [IngestOutput] {
        guard let session else { return [] }
        let outcomes: [StoreOutcome]
        switch result {
        case _ where deferredBatches > 0:
            // After one deferred batch nothing later is acknowledged, whatever the store did with it.
            outcomes = run.map { _ in .deferred }
        case .success(let answered):
            outcomes = answered
        case .failure(_ as BatchRefusedByStore) where run.count > 1:
            // One batch of the run broke the statement: each alone, so the ones before it are stored and acked.
            var outputs: [IngestOutput] = []
            for batch in run {
                let done = await storeNow([batch])
                outputs += done
                if done.contains(where: \.isClose) { break }
            }
            return outputs
        case .failure(let refused as BatchRefusedByStore):
            // This batch only: the agent drops it; other bots and readiness are unaffected.
            logger.warning("bot \(session.botName) batch \(run[0].epoch)/\(run[0].sequence) refused: \(refused)")
            return closeOutput(.close(.badBatch, "batch refused by the database: \(refused)"))
        case .failure(let error):
            return storeFailed(error, epoch: run[0].epoch, sequence: run[0].sequence, session: session)
        }
        var outputs: [IngestOutput] = []
        for (i, (batch, outcome)) in zip(run, outcomes).enumerated() {
            let last = i == run.count - 1
            switch outcome {
            case .stored:
                counters?.stored(batch: batch)
                onStored?(session, batch)
                if last || batch.refusedSamples > 0 { outputs.append(.send(.ack(ack(batch.epoch, batch.sequence, .stored, batch)))) }
            case .duplicate:
                counters?.duplicate()
                outputs.append(.send(.ack(ack(batch.epoch, batch.sequence, .duplicate, nil))))
            case .leaseLost:
                counters?.storeSucceeded()
                return outputs + closeOutput(.close(.replaced, "another connection took over bot \(session.botName)"))
            case .deferred:
                // Alerts are evaluated on arrival even now; the agent keeps the batch (no ack) for the resend.
                counters?.deferred()
                deferredBatches += 1
                onStored?(session, batch)
                if deferredBatches == 1 {
                    logger.warning("bot \(session.botName): the database is unreachable; batches are evaluated but not acknowledged until it is back")
                }
            }
        }
        if !outputs.isEmpty { machine.sent(nowMs: clock.nowMs) }
        return outputs
    }

    private func storeFailed(_ error: any Error, epoch: UInt64, sequence: UInt64, session: BotSession) -> [IngestOutput] {
        counters?.storeFailed()
        logger.error("bot \(session.botName) batch \(epoch)/\(sequence) not stored: \(String(reflecting: error))")
        return closeOutput(.close(.storageUnavailable, "storage unavailable; batch not acknowledged"))
    }

    /// The ack in this connection's protocol version: v2 says what was refused.
    private func ack(_ epoch: UInt64, _ sequence: UInt64, _ outcome: Ack.Outcome, _ batch: ValidatedBatch?) -> Ack {
        guard protocolVersion >= 2 else { return Ack(bootEpoch: epoch, sequence: sequence, outcome: outcome) }
        return Ack(bootEpoch: epoch, sequence: sequence, outcome: outcome,
                   refusedSamples: UInt32(clamping: batch?.refusedSamples ?? 0), refusals: batch?.refusalReasons ?? [])
    }

    private func closeOutput(_ decision: IngestSessionMachine.Decision) -> [IngestOutput] {
        guard case .close(let code, let reason) = decision else { return [] }
        log(code, reason)
        counters?.count(code)
        return [.close(code, reason)]
    }

    private func log(_ code: CloseCode, _ reason: String) {
        let who = session?.botName ?? "unauthenticated agent"
        if code == .heartbeatTimeout || code == .replaced {
            logger.info("closing \(who) from \(remote): \(code): \(reason)")
        } else {
            logger.warning("closing \(who) from \(remote): \(code): \(reason)")
        }
    }

    /// Unix milliseconds now (the system's wall clock).
    public static func nowMs() -> Int64 { SystemClock.wall.nowMs }
}
