import FleetwatchProtocol
import Logging
import NIOCore

/// The agent's shared state: the batch buffer, the connection state machine and the spool.
/// The flush loop and the connection loop both talk to it; it performs no network I/O itself.
actor AgentCore {
    private var buffer: BatchBuffer
    private var machine: ConnectionStateMachine
    private var spool: Spool?
    private let logger: Logger
    private let sendWindow: Int
    private var wake: AsyncStream<Void>.Continuation?
    private var ackedBatches: Int64 = 0
    private var lastError: String?
    private var hubMaxFrameBytes = Int.max
    private var random = SystemRandomNumberGenerator()
    let onSeal: (@Sendable (SealedBatch) -> Void)?

    init(configuration: AgentConfiguration, epoch: UInt64, logger: Logger,
         onSeal: (@Sendable (SealedBatch) -> Void)?) throws {
        buffer = BatchBuffer(epoch: epoch, configuration: configuration.buffer)
        let (s, a) = configuration.heartbeatInterval.components
        machine = ConnectionStateMachine(backoff: configuration.backoff,
                                         heartbeatMs: s * 1000 + a / 1_000_000_000_000_000)
        if let dir = configuration.spoolDirectory {
            var spool = try Spool(directory: dir, maxBytes: configuration.spoolMaxBytes)
            for batch in spool.load() {
                spool.remove(buffer.restore(batch))
            }
            let recovered = buffer.unackedBatches.count
            if recovered > 0 {
                logger.info("recovered \(recovered) unacknowledged batches from the spool")
            }
            self.spool = spool
        }
        self.logger = logger
        self.sendWindow = max(configuration.sendWindow, 1)
        self.onSeal = onSeal
    }

    var epoch: UInt64 { buffer.epoch }

    var status: AgentStatus {
        AgentStatus(connected: machine.isStreaming, bufferedSamples: buffer.bufferedSamples,
                    unackedBatches: buffer.unackedBatches.count, droppedSamples: buffer.droppedSamples,
                    ackedBatches: ackedBatches, lastCloseCode: machine.lastCloseCode?.rawValue, lastError: lastError)
    }

    // MARK: samples

    /// Adds a flush's samples; seals at once when streaming or when the spool must persist them.
    func add(_ series: [Series]) {
        let (sealed, dropped) = buffer.append(series)
        sealed.forEach(persist)
        spool?.remove(dropped)
        if machine.isStreaming || spool != nil, let b = buffer.seal() { persist(b) }
        wake?.yield()
    }

    /// Seals whatever is pending (at shutdown) so the spool keeps it.
    func sealPending() {
        while let b = buffer.seal() { persist(b) }
    }

    var droppedSamples: Int64 { buffer.droppedSamples }

    private func persist(_ batch: SealedBatch) {
        spool?.write(batch)
        onSeal?(batch)
    }

    // MARK: connection

    func start() -> ConnectionStateMachine.Action { machine.start() }

    func stop() { machine.stop() }

    func waited() -> ConnectionStateMachine.Action { machine.waited() }

    /// The socket is open: returns the hello to send and the stream that wakes the writer.
    func opened(botID: String, token: String, agentVersion: String) -> (hello: ByteBuffer, wake: AsyncStream<Void>) {
        _ = machine.opened(nowMs: CoarseClock.preciseNowMs())
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        wake = continuation
        let hello = Hello(botID: botID, token: token, agentVersion: agentVersion,
                          bootEpoch: buffer.epoch, lastAckedSequence: buffer.lastAckedSequence)
        return (Frame.hello(hello).encoded(), stream)
    }

    func closed(code: CloseCode?, error: (any Error)?) -> ConnectionStateMachine.Action {
        wake?.finish()
        wake = nil
        buffer.connectionLost()
        if let error { lastError = "\(error)" }
        if let code {
            if code.dropsOffendingBatch, let b = buffer.dropOldest() {
                spool?.remove([b])
                logger.error("hub refused batch \(b.epoch)/\(b.sequence) (\(code)); dropped its \(b.sampleCount) samples")
            } else if code.isConfigurationError {
                logger.error("hub refused this agent: \(code). Check the bot id, token and agent version.")
            } else {
                logger.info("hub closed the connection: \(code)")
            }
        }
        return machine.closed(code: code, nowMs: CoarseClock.preciseNowMs(), random: Double.random(in: 0..<1, using: &random))
    }

    /// Handles one frame from the hub.
    func received(_ frame: Frame) {
        let now = CoarseClock.preciseNowMs()
        machine.heard(nowMs: now)
        switch frame {
        case .welcome(let welcome):
            if case .startStreaming(let stored) = machine.welcomed(welcome, nowMs: now) {
                hubMaxFrameBytes = Int(welcome.maxFrameBytes)
                buffer.configuration.maxBatchSamples = min(buffer.configuration.maxBatchSamples,
                                                           Int(max(welcome.maxSamplesPerBatch, 1)))
                if stored > 0 { acknowledge(epoch: welcome.bootEpoch, sequence: stored) }
                if let b = buffer.seal() { persist(b) }
                lastError = nil
            }
        case .ack(let ack):
            acknowledge(epoch: ack.bootEpoch, sequence: ack.sequence)
        default:
            break
        }
        wake?.yield()
    }

    private func acknowledge(epoch: UInt64, sequence: UInt64) {
        let removed = buffer.acknowledge(epoch: epoch, sequence: sequence)
        ackedBatches += Int64(removed.count)
        spool?.remove(removed)
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
            return ([], true)
        case .sendHeartbeat:
            frames.append(Frame.heartbeat(Heartbeat(sentAtMs: UInt64(now))).encoded())
        default:
            break
        }
        if machine.isStreaming {
            for b in buffer.nextToSend(limit: sendWindow) {
                if b.frame.readableBytes > hubMaxFrameBytes {
                    logger.error("batch \(b.sequence) is \(b.frame.readableBytes) bytes, above the hub's limit; dropped")
                    if let dropped = buffer.drop(epoch: b.epoch, sequence: b.sequence) { spool?.remove([dropped]) }
                    continue
                }
                frames.append(b.frame)
            }
        }
        if !frames.isEmpty { machine.sent(nowMs: now) }
        return (frames, false)
    }
}

extension AgentCore {
    /// Unacknowledged batches, oldest first (for tests).
    var unackedForTests: [SealedBatch] { Array(buffer.unackedBatches) }
}
