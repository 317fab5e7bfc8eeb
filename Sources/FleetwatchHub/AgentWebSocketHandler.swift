import FleetwatchIngest
import FleetwatchProtocol
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// Bridges one WebSocket to an `IngestSession`: messages and heartbeat ticks are handled in one task,
/// in order, so batches of one connection are stored and acknowledged in sequence. Messages that arrived while
/// the task was busy are handled together: their batches are stored in one statement and acknowledged at once.
/// A run of batches is handed to the store and the next messages are handled while it is written (up to
/// `IngestSession.maxRunsInFlight` runs); the store's answers wake the task, which sends their acks in order.
/// Ticks come from the hub's `ConnectionTicker`, and only when the connection has something to judge.
struct AgentWebSocketHandler: Sendable {
    let configuration: IngestConfiguration
    let store: any IngestStore
    let counters: IngestCounters
    let logger: Logger
    let onStored: (@Sendable (BotSession, ValidatedBatch) -> Void)?
    let commands: (any CommandChannel)?
    let connections: LiveConnections
    /// Received messages waiting over all connections (`hub.max_pending_bytes_total`).
    let backlog: IngestBacklog
    /// Stuck connections found in a tick, logged after it (`logStalls()`).
    let stalls = StallReports()
    /// The hub's one timer: heartbeats, silence and hello deadlines of every connection.
    let ticker: ConnectionTicker
    /// Whether PostgreSQL answers now: a connection that had batches deferred during an outage (or was let in
    /// provisionally) is asked to reconnect and send them again once it does.
    var databaseUp: @Sendable () -> Bool = { true }

    enum Event: Sendable {
        /// `ReceivedMessages` has messages.
        case messages
        /// The store answered a run handed over.
        case answered
        case push(Frame)
        case close(CloseCode, String)
        case text
        case tick
        case ended((any Error)?)
    }

    /// Largest first message (the hello is a few hundred bytes).
    static let maxHelloBytes = 4096
    /// Most WebSocket frames one message may come in.
    static let maxFragments = 4096

    func handle(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, remote: String) async throws {
        let (events, continuation) = AsyncStream.makeStream(of: Event.self)
        let session = IngestSession(configuration: configuration, store: store, remote: remote, logger: logger,
                                    counters: counters, commands: commands, onStored: onStored,
                                    onAnswer: { continuation.yield(.answered) })
        let received = ReceivedMessages()
        let maxMessage = configuration.maxFrameBytes * 2
        let heartbeatMs = configuration.heartbeatInterval.wholeMilliseconds
        let stallMs = Self.stallWarning.wholeMilliseconds
        // Bounded backlog: at most `maxPendingBytes` (and one message) wait here, and at most the hub-wide
        // limit over all connections; beyond either the reader stops reading, and the WebSocket layer stops
        // reading the socket.
        let activity = ConnectionActivity(maxPendingBytes: configuration.maxPendingBytes,
                                          bytesPerSecond: configuration.maxBytesPerSecond,
                                          burstBytes: max(configuration.maxPendingBytes, configuration.limits.maxPayloadBytes),
                                          backlog: backlog)
        let reader = Task {
            do {
                var frames = inbound.makeAsyncIterator()
                var message: ByteBuffer?
                var fragments = 0
                var first = true
                while let frame = try await frames.next() {
                    activity.heard()
                    switch frame.opcode {
                    case .text:
                        continuation.yield(.text)
                        return
                    case .binary:
                        guard message == nil else { continuation.yield(.close(.protocolError, "a new message inside a fragmented one")); return }
                        message = frame.data
                        fragments = 1
                    case .continuation:
                        guard message != nil else { continuation.yield(.close(.protocolError, "a continuation frame outside a message")); return }
                        var data = frame.data
                        message!.writeBuffer(&data)
                        fragments += 1
                    }
                    // Before the hello only a hello-sized message is read: a stranger cannot make the hub
                    // assemble megabytes (or a million fragments) before saying who it is.
                    let limit = first ? Self.maxHelloBytes : maxMessage
                    if message!.readableBytes > limit {
                        continuation.yield(first ? .close(.helloExpected, "the first message must be a hello of at most \(limit) bytes")
                                                 : .close(.messageTooBig, "message larger than \(limit) bytes"))
                        return
                    }
                    if fragments > Self.maxFragments {
                        continuation.yield(.close(.messageTooBig, "message in more than \(Self.maxFragments) fragments"))
                        return
                    }
                    guard frame.fin, let whole = message else { continue }
                    message = nil
                    await activity.received(bytes: ConnectionActivity.pendingCost(of: whole), cost: ConnectionActivity.cost(of: whole))
                    if received.append(whole) { continuation.yield(.messages) }
                    if first {
                        first = false
                        await activity.awaitHello()
                    }
                    await activity.awaitRoom()
                }
                continuation.yield(.ended(nil))
            } catch {
                continuation.yield(.ended(error))
            }
        }
        let ticks = ticker.register {
            // A store that takes longer than a heartbeat interval must not look like a dead hub: the heartbeat
            // goes out beside the loop, which is inside that store.
            let due = activity.check(heartbeatMs: heartbeatMs, stallMs: stallMs)
            if due.heartbeat {
                Task { try? await outbound.write(.binary(Frame.heartbeat(Heartbeat(sentAtMs: UInt64(IngestSession.nowMs()))).encoded())) }
            }
            if due.tick { continuation.yield(.tick) }
            if let stall = due.stall { stalls.add { describe(stall, remote: remote) } }
        }
        var registered: BotSession?
        do {
        loop: for await event in events {
            let outputs: [IngestOutput]
            switch event {
            case .messages:
                let messages = received.takeAll()
                guard !messages.isEmpty else { continue }
                let checkedAt = ContinuousClock.now
                activity.begin()
                outputs = await session.handle(messages)
                // Deferred batches, or a provisional session: every tick checks whether the database is back.
                activity.handled(bytes: messages.reduce(0) { $0 + ConnectionActivity.pendingCost(of: $1) },
                                 wantsTicks: session.deferredBatches > 0 || session.session?.provisional == true)
                activity.helloDone()
                if registered == nil, let s = session.session {
                    registered = s
                    activity.identify(bot: s.botName)
                    await connections.add(bot: s.botName, botID: s.botID, connectionID: s.connectionID, leaseOrder: s.leaseOrder,
                                          checkedAt: checkedAt,
                                          push: { continuation.yield(.push($0)) }, close: { continuation.yield(.close($0, $1)) })
                }
            case .answered:
                activity.begin()
                outputs = await session.takeAnswers()
                activity.handled(bytes: 0, wantsTicks: session.deferredBatches > 0 || session.session?.provisional == true)
            case .push(let frame): outputs = [.send(frame)]
            case .close(let code, let reason):
                // Every message before this one was handled: its batch handed to the store, or deferred. The session
                // sends the acks of the runs still being written first, then this close.
                activity.begin()
                outputs = await session.closing(code, reason)
                activity.handled(bytes: 0, wantsTicks: session.deferredBatches > 0 || session.session?.provisional == true)
            case .text:
                activity.begin()
                outputs = await session.handleText()
                activity.handled(bytes: 0, wantsTicks: false)
            case .tick:
                if session.deferredBatches > 0 || session.session?.provisional == true, databaseUp() {
                    let reason = "the database is back: connect again and send the unacknowledged batches"
                    logger.notice("closing bot \(registered?.botName ?? "?") from \(remote): \(CloseCode.storageUnavailable): \(reason)")
                    counters.count(.storageUnavailable)
                    try? await outbound.close(.unknown(CloseCode.storageUnavailable.rawValue), reason: reason)
                    break loop
                }
                activity.begin()
                outputs = await session.tick(heardAtMs: activity.lastReceivedMs)
                activity.handled(bytes: 0, wantsTicks: session.deferredBatches > 0 || session.session?.provisional == true)
                // Where the silence was: an agent that sent nothing, or frames the hub did not read (docs/operations.md).
                if outputs.contains(where: { if case .close(.heartbeatTimeout, _) = $0 { true } else { false } }) {
                    logger.notice("bot \(registered?.botName ?? "?") from \(remote), closed for silence: \(activity.silenceReport())")
                }
            case .ended(let error):
                if let error { logger.info("agent connection from \(remote) ended: \(error)") }
                break loop
            }
            for output in outputs {
                switch output {
                case .send(let frame):
                    activity.writing()
                    try await outbound.write(.binary(frame.encoded()))
                    activity.sent()
                case .close(let code, let reason):
                    try? await outbound.close(.unknown(code.rawValue), reason: String(reason.utf8.prefix(120)) ?? "")
                    break loop
                }
            }
        }
        } catch {
            logger.info("agent connection from \(remote) failed: \(error)")
        }
        continuation.finish()
        // Ended (nothing above returns or throws past here), before the awaits below (a slow database): the reader
        // stops (it would read on without limit once the activity is finished), the ticker forgets the connection,
        // and no stall is reported for it.
        reader.cancel()
        ticker.unregister(ticks)
        activity.finish()
        if let s = registered { await connections.remove(bot: s.botName, connectionID: s.connectionID) }
        await session.finish()
    }

    /// How long a connection may stay inside one message, one write or one wait for room before the hub warns.
    static let stallWarning: Duration = .seconds(60)

    /// Logs the stuck connections the last tick found: a few by name, the rest counted (`StallReports`).
    func logStalls() {
        for line in stalls.take() { logger.warning("\(line)") }
    }

    /// The warning for a connection stuck in one place (`ConnectionActivity.stall`): which bot, where, how long.
    func describe(_ stall: ConnectionActivity.Stall, remote: String) -> String {
        let bot = "bot \(stall.bot ?? "(before its hello)") from \(remote)"
        switch stall.kind {
        case .handling:
            return "\(bot): one of its messages has been handled for \(stall.seconds) s (its batches admitted and stored in PostgreSQL: is the database answering? see /api/status); the agent keeps its batches meanwhile"
        case .writing:
            return "\(bot): writing to the agent has taken \(stall.seconds) s: the agent does not read what the hub sends; its batches wait unacknowledged"
        case .heldBack:
            let (bytes, _, parked) = backlog.figures
            return "\(bot): reading its messages has been held back for \(stall.seconds) s \(stall.loopBusy ? "while its loop is busy" : "with its connection idle"): "
                + "\(stall.pendingBytes) bytes of it wait (hub.max_pending_bytes \(configuration.maxPendingBytes)); hub-wide \(bytes) bytes wait "
                + "(hub.max_pending_bytes_total \(backlog.limit)), \(backlog.unevaluated) batches wait for evaluation "
                + "(hub.max_unevaluated_batches \(backlog.maxUnevaluated)), \(parked) readers held back"
        }
    }
}
