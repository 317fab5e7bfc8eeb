import FleetwatchProtocol
import Logging
import Foundation
import NIOCore

/// The agent's shared state: the batch buffer, the connection state machine and the command log; the spool and
/// the journal are written by `disk`, off this actor.
/// The flush loop and the connection loop both talk to it; it performs no network I/O itself.
actor AgentCore {
    private var buffer: BatchBuffer
    private var machine: ConnectionStateMachine
    /// Spool files and the command journal, written off this actor in order.
    nonisolated let disk: AgentDisk
    private let logger: Logger
    private let sendWindow: Int
    private let maxCoalesceDelayMs: Int64?
    /// When the oldest pending sample was added (while it waits for an ack, `maxCoalesceDelay`).
    private var pendingSinceMs: Int64?
    /// The agent is closing the connection because it heard nothing from the hub (4008).
    private var closingForSilence = false
    private var wake: AsyncStream<Void>.Continuation?
    private var ackedBatches: Int64 = 0
    private var lastError: String?
    private var hubMaxFrameBytes = Int.max
    private var random = SystemRandomNumberGenerator()
    let onSeal: (@Sendable (SealedBatch) -> Void)?
    // Emergency commands.
    private var commandLog: CommandLog
    private var handler: (any EmergencyHandler)?
    /// Command results and declarations waiting for the connection; sent before batches.
    private var outbox: [ByteBuffer] = []
    /// Emergencies the bot declared that the hub has not confirmed yet, oldest first.
    private var declarations: [EmergencyDeclaration] = []
    private(set) var emergencyMode = false
    /// Samples the hub acknowledged without storing them (v2 acks), since start.
    private(set) var refusedByHub: Int64 = 0
    private var lastRefusalLog: Int64 = .min
    /// The version offered in the hello: the newest, or 1 after a hub refused the newest with 4001.
    private var protocolVersion: UInt16
    /// Protocol 3: codes this connection's batches against what it sent before (nil on protocols 1 and 2).
    private var deltaEncoder: DeltaEncoder?

    init(configuration: AgentConfiguration, epoch: UInt64, logger: Logger,
         onSeal: (@Sendable (SealedBatch) -> Void)?) throws {
        buffer = BatchBuffer(epoch: epoch, configuration: configuration.buffer)
        protocolVersion = min(max(configuration.protocolVersion, 1), WireProtocol.version)
        machine = ConnectionStateMachine(backoff: configuration.backoff,
                                         heartbeatMs: configuration.heartbeatInterval.wholeMilliseconds)
        var spool: Spool?
        if let dir = configuration.spoolDirectory {
            var loaded = try Spool(directory: dir, maxBytes: configuration.spoolMaxBytes)
            for batch in loaded.load() {
                loaded.remove(buffer.restore(batch))
            }
            let recovered = buffer.unackedBatches.count
            if recovered > 0 {
                logger.info("recovered \(recovered) unacknowledged batches from the spool")
            }
            spool = loaded
        }
        self.logger = logger
        self.sendWindow = max(configuration.sendWindow, 1)
        self.maxCoalesceDelayMs = configuration.maxCoalesceDelay.map { max(Int64($0 / .milliseconds(1)), 0) }
        self.onSeal = onSeal
        var journal: CommandJournal?
        if let dir = configuration.spoolDirectory {
            let opened = try CommandJournal(directory: dir)
            commandLog = CommandLog(botID: configuration.botID, journal: opened.load())
            journal = opened
        } else {
            commandLog = CommandLog(botID: configuration.botID)
        }
        disk = AgentDisk(spool: spool, journal: journal)
    }

    var epoch: UInt64 { buffer.epoch }

    var status: AgentStatus {
        AgentStatus(connected: machine.isStreaming, bufferedSamples: buffer.bufferedSamples,
                    unackedBatches: buffer.unackedBatches.count, droppedSamples: buffer.droppedSamples,
                    ackedBatches: ackedBatches, lastCloseCode: machine.lastCloseCode?.rawValue, lastError: lastError,
                    emergencyMode: emergencyMode, refusedByHub: refusedByHub, protocolVersion: protocolVersion)
    }

    // MARK: samples

    /// Adds a flush's samples; seals at once when the spool must persist them, or when streaming and the hub
    /// is keeping up (see `AgentConfiguration.maxCoalesceDelay`).
    func add(_ series: [Series]) {
        let (sealed, dropped) = buffer.append(series)
        sealed.forEach(persist)
        disk.remove(dropped)
        let now = CoarseClock.preciseNowMs()
        if buffer.pendingCount == 0 { pendingSinceMs = nil } else if pendingSinceMs == nil { pendingSinceMs = now }
        if disk.spools || sealsNow(nowMs: now) { sealPendingBatch() }
        wake?.yield()
    }

    /// Whether pending samples go into a batch now: streaming, and no batch awaits an ack or they have waited
    /// `maxCoalesceDelay`.
    private func sealsNow(nowMs: Int64) -> Bool {
        guard machine.isStreaming else { return false }
        guard let limit = maxCoalesceDelayMs, !buffer.unackedBatches.isEmpty else { return true }
        return nowMs - (pendingSinceMs ?? .max) >= limit
    }

    private func sealPendingBatch() {
        if let b = buffer.seal() { persist(b) }
        if buffer.pendingCount == 0 { pendingSinceMs = nil }
    }

    /// Seals whatever is pending (at shutdown) so the spool keeps it.
    func sealPending() {
        while let b = buffer.seal() { persist(b) }
        pendingSinceMs = nil
    }

    var droppedSamples: Int64 { buffer.droppedSamples }

    var hubRefusedSamples: Int64 { refusedByHub }

    private func persist(_ batch: SealedBatch) {
        disk.write(batch)
        onSeal?(batch)
    }

    // MARK: connection

    func start() -> ConnectionStateMachine.Action { machine.start() }

    func stop() { machine.stop() }

    func waited() -> ConnectionStateMachine.Action { machine.waited() }

    /// The socket is open: returns the hello to send and the stream that wakes the writer.
    func opened(botID: String, token: String, agentVersion: String) -> (hello: ByteBuffer, wake: AsyncStream<Void>) {
        _ = machine.opened(nowMs: CoarseClock.preciseNowMs())
        closingForSilence = false
        outbox.removeAll()   // results are sent again when the hub delivers their command again
        deltaEncoder = nil
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        wake = continuation
        let hello = Hello(protocolVersion: protocolVersion, botID: botID, token: token, agentVersion: agentVersion,
                          bootEpoch: buffer.epoch, lastAckedSequence: buffer.lastAckedSequence)
        return (Frame.hello(hello).encoded(), stream)
    }

    func closed(code received: CloseCode?, error: (any Error)?) -> ConnectionStateMachine.Action {
        // When the agent closed the connection itself (the hub was silent), the hub answers with 1000: that is
        // not why the connection ended.
        let code = closingForSilence ? .heartbeatTimeout : received
        // The hub found this agent silent: how long ago a frame was last handed to the connection says whether the
        // agent sent nothing or its frames did not reach the hub in time.
        let hubFoundSilence = !closingForSilence && received == .heartbeatTimeout
        let sentAgo = machine.lastSentMs.map { CoarseClock.preciseNowMs() - $0 }
        closingForSilence = false
        wake?.finish()
        wake = nil
        buffer.connectionLost()
        if let error { lastError = "\(error)" }
        deltaEncoder = nil
        if code == .unsupportedVersion, protocolVersion > 1 {
            // A hub older than this agent: offer the next older version from now on, and retry at once.
            logger.notice("the hub does not speak protocol \(protocolVersion); offering protocol \(protocolVersion - 1)")
            protocolVersion -= 1
            return machine.closed(code: nil, nowMs: CoarseClock.preciseNowMs(), random: Double.random(in: 0..<1, using: &random))
        }
        if let code {
            if code.dropsOffendingBatch, let b = buffer.dropOldest() {
                disk.remove([b])
                logger.error("hub refused batch \(b.epoch)/\(b.sequence) (\(code)); dropped its \(b.sampleCount) samples")
            } else if code.isConfigurationError {
                logger.error("hub refused this agent: \(code). Check the bot id, token and agent version.")
            } else if hubFoundSilence, let sentAgo {
                logger.warning("hub closed the connection: \(code): this agent last handed it a frame \(sentAgo) ms before")
            } else {
                logger.info("hub closed the connection: \(code)")
            }
        }
        return machine.closed(code: code, nowMs: CoarseClock.preciseNowMs(), random: Double.random(in: 0..<1, using: &random))
    }

    /// Handles one frame from the hub; returns emergency work to run outside the actor.
    func received(_ frame: Frame) async -> CommandWork? {
        var work: CommandWork?
        let now = CoarseClock.preciseNowMs()
        machine.heard(nowMs: now)
        switch frame {
        case .welcome(let welcome):
            if case .startStreaming(let stored) = machine.welcomed(welcome, nowMs: now) {
                hubMaxFrameBytes = Int(welcome.maxFrameBytes)
                deltaEncoder = welcome.protocolVersion >= WireProtocol.deltaBatchVersion ? DeltaEncoder() : nil
                buffer.configuration.maxBatchSamples = min(buffer.configuration.maxBatchSamples,
                                                           Int(max(welcome.maxSamplesPerBatch, 1)))
                if stored > 0 { acknowledge(epoch: welcome.bootEpoch, sequence: stored) }
                sealPendingBatch()
                lastError = nil
                outbox += declarations.map { Frame.emergencyDeclaration($0).encoded() }
            }
        case .ack(let ack):
            acknowledge(epoch: ack.bootEpoch, sequence: ack.sequence)
            if let refused = ack.refusedSamples, refused > 0 { hubRefused(Int64(refused), ack.refusals, now: now) }
        case .command(let command):
            work = await decide(command)
        default:
            break
        }
        wake?.yield()
        return work
    }

    /// Counts samples the hub refused and says why in the log, at most once a minute.
    private func hubRefused(_ count: Int64, _ reasons: Ack.Refusals, now: Int64) {
        refusedByHub += count
        guard now - lastRefusalLog >= 60_000 else { return }
        lastRefusalLog = now
        var why: [String] = []
        if reasons.contains(.metricNameLimit) {
            why.append("metric names over this bot's limit at the hub (record fewer distinct names; see docs/agent.md)")
        }
        if reasons.contains(.invalidValue) { why.append("non-finite values or timestamps outside the hub's window") }
        logger.warning("the hub stored a batch without \(count) of its samples: \(why.joined(separator: "; ")); \(refusedByHub) refused since start")
    }

    // MARK: emergency commands

    func setHandler(_ handler: any EmergencyHandler) { self.handler = handler }

    private func decide(_ command: CommandFrame) async -> CommandWork? {
        declarations.removeAll { $0.commandID == command.commandID }   // the hub confirmed a declaration
        let now = UInt64(CoarseClock.preciseNowMs())
        let decision = commandLog.decide(command, nowMs: now, liquidationEnabled: handler?.liquidationEnabled ?? false)
        switch decision {
        case .resend(let results):
            outbox += results.map { Frame.commandResult($0).encoded() }
            return nil
        case .relatch(let results):
            outbox += results.map { Frame.commandResult($0).encoded() }
            logger.critical("emergency mode is latched at the hub (command \(command.commandID)): entering it again")
            return handler.map { .relatch($0) }
        case .refuse(let why):
            logger.error("refused command \(command.commandID): \(why)")
            outbox.append(Frame.commandResult(CommandResultFrame(commandID: command.commandID, step: 0, status: .refused,
                                                                 atMs: now, detail: why)).encoded())
            return nil
        case .execute(let steps, let skipped, let reportReceived):
            logger.critical("emergency command \(command.commandID) from the hub: \(command.reason)")
            guard let handler else {
                await report(CommandResultFrame(commandID: command.commandID, step: 0, status: .received, atMs: now, detail: command.reason))
                await report(CommandResultFrame(commandID: command.commandID, step: 0, status: .failed, atMs: now,
                                          detail: "this bot registered no emergency handler (MonitorAgent.setEmergencyHandler)"))
                return nil
            }
            return .run(command, steps: steps, liquidationSkipped: skipped, reportReceived: reportReceived, handler: handler)
        }
    }

    /// A step finished: remember it (journal first), then send it.
    func report(_ result: CommandResultFrame) async {
        // On disk first, then in the log: a redelivery arriving during the write resends only what is journalled.
        await disk.append(result)
        commandLog.record(result)
        if result.status == .succeeded {
            if result.step == CommandFrame.Actions.latchEmergency.rawValue { emergencyMode = true }
            if result.step == CommandFrame.Actions.resume.rawValue { emergencyMode = false }
        }
        if machine.isStreaming { outbox.append(Frame.commandResult(result).encoded()) }
        wake?.yield()
    }

    func relatched() { emergencyMode = true }

    /// The bot declares an emergency: returns the work to run (nil without a handler) and queues the declaration.
    func declare(reason: String, liquidate: Bool) -> (CommandFrame, CommandWork?) {
        let id = CommandID.random()
        let now = UInt64(CoarseClock.preciseNowMs())
        var actions = CommandFrame.Actions.emergencyStop
        let liquidating = liquidate && (handler?.liquidationEnabled ?? false)
        if liquidating { actions.insert(.liquidate) }
        let declaration = EmergencyDeclaration(commandID: id, declaredAtMs: now, actions: actions, reason: reason)
        declarations.append(declaration)
        if machine.isStreaming { outbox.append(Frame.emergencyDeclaration(declaration).encoded()) }
        commandLog.declared(id)
        let command = CommandFrame(commandID: id, botID: commandLog.botID, issuedAtMs: now, expiresAtMs: now + 60_000,
                                   actions: actions, reason: reason)
        let steps = [CommandFrame.Actions.stopTrading, .cancelOrders, .liquidate, .latchEmergency].filter { actions.contains($0) }
        let work = handler.map { CommandWork.run(command, steps: steps, liquidationSkipped: liquidate && !liquidating,
                                                 reportReceived: true, handler: $0) }
        wake?.yield()
        return (command, work)
    }

    private func acknowledge(epoch: UInt64, sequence: UInt64) {
        let removed = buffer.acknowledge(epoch: epoch, sequence: sequence)
        ackedBatches += Int64(removed.count)
        disk.remove(removed)
        // Samples that waited for the hub to catch up go now, in one batch.
        if buffer.pendingCount > 0, sealsNow(nowMs: CoarseClock.preciseNowMs()) { sealPendingBatch() }
    }

    /// Wakes the writer for its periodic checks (heartbeats, silence) without counting as a frame heard.
    func poke() {
        wake?.yield()
    }

    /// What the writer should do now: frames to send, or close a silent connection.
    func nextWork() -> (frames: [ByteBuffer], closeSilent: Bool) {
        let now = CoarseClock.preciseNowMs()
        var frames: [ByteBuffer] = []
        switch machine.tick(nowMs: now) {
        case .closeSilentConnection:
            closingForSilence = true
            return ([], true)
        case .sendHeartbeat:
            frames.append(Frame.heartbeat(Heartbeat(sentAtMs: UInt64(now))).encoded())
        default:
            break
        }
        if machine.isStreaming {
            frames += outbox
            outbox.removeAll()
            for b in buffer.nextToSend(limit: sendWindow) {
                if let delta = deltaFrame(b) {
                    frames.append(delta)
                    continue
                }
                if b.frame.readableBytes > hubMaxFrameBytes {
                    logger.error("batch \(b.sequence) is \(b.frame.readableBytes) bytes, above the hub's limit; dropped")
                    if let dropped = buffer.drop(epoch: b.epoch, sequence: b.sequence) { disk.remove([dropped]) }
                    continue
                }
                frames.append(b.frame)
            }
        }
        if !frames.isEmpty { machine.sent(nowMs: now) }
        return (frames, false)
    }

    /// On protocol 3, `batch` coded against what this connection sent before; nil: send its self-contained frame
    /// (a batch from the spool, one the delta coding cannot take, or one too large as a delta).
    private func deltaFrame(_ batch: SealedBatch) -> ByteBuffer? {
        guard let payload = batch.payload else { return nil }
        return deltaEncoder?.encode(epoch: batch.epoch, sequence: batch.sequence, payload: payload,
                                    maxFrameBytes: hubMaxFrameBytes)
    }
}

/// Emergency work the agent runs outside its actor, so a slow step never blocks the connection.
enum CommandWork: Sendable {
    case run(CommandFrame, steps: [CommandFrame.Actions], liquidationSkipped: Bool, reportReceived: Bool, handler: any EmergencyHandler)
    case relatch(any EmergencyHandler)
}

extension AgentCore {
    /// Unacknowledged batches, oldest first (for tests).
    var unackedForTests: [SealedBatch] { Array(buffer.unackedBatches) }
}
