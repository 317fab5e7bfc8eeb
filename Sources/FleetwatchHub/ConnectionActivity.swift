import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import NIOCore
import Synchronization

/// What the reader, the ticker and the handling loop of one agent connection share: when bytes last arrived
/// and left, whether a message is being handled, and how many received bytes wait to be handled. The reader
/// hands each message on, then waits (and so stops reading the socket; the WebSocket layer then stops reading
/// TCP) while more than `maxPendingBytes` wait, so one connection can never queue more than that plus one
/// message, however large that message is; while the hub-wide `backlog` is over its limit; and, before
/// handing a message on, while the connection is past its byte rate (a token bucket of `bytesPerSecond`,
/// bursts up to `burstBytes`), so one bot can take no more than its share of the hub however fast it sends.
final class ConnectionActivity: Sendable {
    private struct State {
        var lastReceivedMs: Int64
        /// When the reader last read a frame, and last came back from waiting for room (wall clock): what a close
        /// for silence reports, to tell an agent that sent nothing from frames the hub did not read.
        var lastFrameMs: Int64
        var lastLetGoMs: Int64? = nil
        var lastSentMs: Int64
        var pendingBytes = 0
        var waiter: CheckedContinuation<Void, Never>?
        var waiting = false
        var finished = false
        var helloHandled = false
        var helloWaiter: CheckedContinuation<Void, Never>?
        var bucket: TokenBucket
        /// The loop asked to be woken at every tick (`handled(bytes:wantsTicks:)`).
        var wantsTicks = false
        /// For `stall(afterMs:)`: what the loop does since when (monotonic), since when the reader has been held
        /// back in `awaitRoom`, and whether each was reported.
        var stage = Stall.Kind.handling
        var stageSinceMs: Int64? = nil
        var stageReported = false
        var heldSinceMs: Int64? = nil
        var heldReported = false
        /// The bot, once its hello was accepted (for the stall warning).
        var bot: String?

        /// The loop is inside a message (between `begin` and `handled`).
        var busy: Bool { stage == .handling && stageSinceMs != nil }

        mutating func enter(_ stage: Stall.Kind, at nowMs: Int64) {
            self.stage = stage
            stageSinceMs = nowMs
            stageReported = false
        }

        /// `ConnectionActivity.heartbeatDue`: counts the heartbeat as written when due; never for an ended connection.
        mutating func heartbeatDue(nowMs: Int64, intervalMs: Int64) -> Bool {
            guard !finished, busy, nowMs - lastSentMs >= intervalMs else { return false }
            lastSentMs = nowMs
            return true
        }

        /// `ConnectionActivity.tickDue`.
        func tickDue(nowMs: Int64, intervalMs: Int64) -> Bool {
            guard !finished else { return false }
            return !helloHandled || wantsTicks || nowMs - lastSentMs >= intervalMs
                || (!waiting && nowMs - lastReceivedMs >= intervalMs)
        }

        /// `ConnectionActivity.stall`: marks what it returns as reported. `nowMs` is monotonic.
        mutating func stall(nowMs: Int64, afterMs: Int64) -> Stall? {
            guard !finished else { return nil }
            let loopBusy = stageSinceMs != nil
            if let since = stageSinceMs, !stageReported, nowMs - since > afterMs {
                stageReported = true
                return Stall(kind: stage, bot: bot, seconds: (nowMs - since) / 1000, pendingBytes: pendingBytes, loopBusy: true)
            }
            if let since = heldSinceMs, !heldReported, nowMs - since > afterMs {
                heldReported = true
                return Stall(kind: .heldBack, bot: bot, seconds: (nowMs - since) / 1000, pendingBytes: pendingBytes, loopBusy: loopBusy)
            }
            return nil
        }
    }

    /// What one tick found for this connection (`check(heartbeatMs:stallMs:)`).
    struct TickCheck: Sendable, Equatable {
        /// Send a heartbeat beside the loop, which is inside a message (`heartbeatDue`).
        var heartbeat: Bool
        /// Wake the loop (`tickDue`).
        var tick: Bool
        /// A stall to report (`stall(afterMs:)`).
        var stall: Stall?
    }

    /// A connection stuck in one place for longer than it should ever take (`stall(afterMs:)`).
    struct Stall: Sendable, Equatable {
        enum Kind: Sendable, Equatable {
            /// The loop is inside one message (its batches being admitted and stored).
            case handling
            /// The loop is writing to the agent (an ack, a heartbeat, a command).
            case writing
            /// The reader waits for room (the connection's or the hub-wide backlog).
            case heldBack
        }
        let kind: Kind
        let bot: String?
        let seconds: Int64
        /// The connection's received bytes not yet handled.
        let pendingBytes: Int
        /// Whether the loop was inside a message or a write at the time (for `heldBack`).
        let loopBusy: Bool
    }
    private let state: Mutex<State>
    let maxPendingBytes: Int
    let backlog: IngestBacklog?
    /// The wall clock the ingest session reads (when the agent was last heard, when the hub last wrote).
    let clock: any MillisecondClock
    /// The clock of the byte rate: monotonic, so a wall-clock step neither throttles nor frees a connection.
    let rateClock: any MillisecondClock

    init(maxPendingBytes: Int, bytesPerSecond: Int = .max, burstBytes: Int = .max, backlog: IngestBacklog? = nil,
         clock: any MillisecondClock = SystemClock.wall, rateClock: any MillisecondClock = SystemClock.monotonic) {
        self.maxPendingBytes = maxPendingBytes
        self.backlog = backlog
        self.clock = clock
        self.rateClock = rateClock
        let now = clock.nowMs
        state = Mutex(State(lastReceivedMs: now, lastFrameMs: now, lastSentMs: now,
                            bucket: TokenBucket(bytesPerSecond: Double(bytesPerSecond), burst: Double(burstBytes), nowMs: rateClock.nowMs)))
    }

    /// What a message costs against the byte rate: its size; for a batch the inflated size it declares, or
    /// `bytesPerSample` for each sample it declares, if larger (a small frame that inflates to megabytes, or
    /// packs thousands of tiny series, costs what handling it costs).
    static func cost(of message: ByteBuffer) -> Int {
        let size = pendingCost(of: message)
        if message.getInteger(at: message.readerIndex, as: UInt8.self) == FrameType.deltaBatch.rawValue {
            guard let declared = DeltaBatchFrame.declaredSizes(ofMessage: message) else { return size }
            // Bounded like a self-contained batch's u32 fields.
            let samples = Int(min(declared.samples, UInt64(UInt32.max))) * bytesPerSample
            return max(size, Int(min(declared.rawLength ?? 0, UInt64(UInt32.max))), samples)
        }
        guard size >= 25, message.getInteger(at: message.readerIndex, as: UInt8.self) == FrameType.batch.rawValue,
              let samples = message.getInteger(at: message.readerIndex + 17, endianness: .little, as: UInt32.self),
              let raw = message.getInteger(at: message.readerIndex + 21, endianness: .little, as: UInt32.self) else { return size }
        return max(size, Int(raw), Int(samples) * bytesPerSample)
    }

    /// What a waiting message counts against `maxPendingBytes` and the hub-wide backlog: its size, and at least
    /// `minimumMessageCost`, so a flood of empty or tiny messages sent while the loop waits for a slow store
    /// fills the limit too (empty ones counted nothing and queued without bound).
    static func pendingCost(of message: ByteBuffer) -> Int { max(message.readableBytes, minimumMessageCost) }

    /// What a message costs at least, whatever its size (the WebSocket frame, its buffer and its queue entry).
    static let minimumMessageCost = 64

    /// What one sample of a batch costs at least against the byte rate.
    static let bytesPerSample = 64

    /// The reader got a message of `bytes` costing `cost`: counts it and returns once the connection is within
    /// its byte rate; the reader then hands the message on and calls `awaitRoom`. While it waits, the agent
    /// counts as heard: the wait is the hub's doing, not the agent's silence.
    func received(bytes: Int, cost: Int? = nil) async {
        let now = clock.nowMs, rateNow = rateClock.nowMs
        let (waitMs, finished) = state.withLock { s -> (Int64, Bool) in
            s.lastReceivedMs = now
            guard !s.finished else { return (0, true) }
            s.pendingBytes += bytes
            s.waiting = true
            return (s.bucket.take(Double(cost ?? bytes), nowMs: rateNow), false)
        }
        guard !finished else { return }
        backlog?.add(bytes)
        defer { state.withLock { s in s.waiting = false; s.lastReceivedMs = clock.nowMs } }
        if waitMs > 0 { try? await Task.sleep(for: .milliseconds(waitMs)) }
    }

    /// After handing a message on: returns once this connection's waiting bytes are within `maxPendingBytes`
    /// and the hub-wide backlog within its limit (or the connection ends). Waiting only after the message was
    /// handed on means a message larger than the limit is handled, never waited on by itself.
    func awaitRoom() async {
        let owner = ObjectIdentifier(self)
        while true {
            let (local, finished) = state.withLock { s -> (Bool, Bool) in
                if !s.finished, s.pendingBytes > maxPendingBytes || backlog?.isOver == true { s.waiting = true }
                return (s.pendingBytes > maxPendingBytes, s.finished)
            }
            if finished { break }
            if !local, backlog?.isOver != true { break }
            let heldAt = rateClock.nowMs
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { s -> Bool in
                    if s.finished { return true }
                    if s.heldSinceMs == nil { s.heldSinceMs = heldAt }
                    if s.pendingBytes > maxPendingBytes {
                        s.waiter = continuation
                        return false
                    }
                    guard let backlog else { return true }
                    s.waiter = continuation
                    // The backlog's wake takes the waiter under this lock, so a wake right after parking
                    // finds it.
                    if backlog.park(owner, wake: { [weak self] in self?.wake() }) { return false }
                    s.waiter = nil
                    return true
                }
                if resumeNow { continuation.resume() }
            }
            backlog?.unpark(owner)
        }
        let now = clock.nowMs
        state.withLock { s in
            s.waiting = false
            s.lastReceivedMs = now
            if s.heldSinceMs != nil { s.lastLetGoMs = now }
            s.heldSinceMs = nil
            s.heldReported = false
        }
    }

    /// Resumes the waiting reader (it checks again what it waits for).
    private func wake() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// The reader waits here after the first message until the loop has handled it (the hello): nothing more is
    /// read from a connection that has not said who it is.
    func awaitHello() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { s -> Bool in
                if s.helloHandled || s.finished { return true }
                s.helloWaiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// The loop handled the first message.
    func helloDone() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.helloHandled = true
            defer { s.helloWaiter = nil }
            return s.helloWaiter
        }
        waiter?.resume()
    }

    /// The reader saw a frame that carries no message (a ping, a fragment): the agent is not silent.
    func heard() {
        let now = clock.nowMs
        state.withLock { s in
            s.lastReceivedMs = now
            s.lastFrameMs = now
        }
    }

    /// For a close for silence: how long ago the reader last read a frame and last came back from waiting for
    /// room, whether it waits now, and the bytes read but not yet handled.
    func silenceReport() -> String {
        let now = clock.nowMs
        return state.withLock { s in
            let reader = if s.waiting {
                "its reader is held back now"
            } else if let letGo = s.lastLetGoMs {
                "its reader last came back from waiting for room \(now - letGo) ms ago"
            } else {
                "its reader never waited for room"
            }
            return "the hub last read a frame from it \(now - s.lastFrameMs) ms ago; \(reader); \(s.pendingBytes) bytes read wait to be handled"
        }
    }

    /// The loop starts handling a message.
    func begin() {
        let now = rateClock.nowMs
        state.withLock { $0.enter(.handling, at: now) }
    }

    /// The loop starts writing to the agent; `sent()` ends the write.
    func writing() {
        let now = rateClock.nowMs
        state.withLock { $0.enter(.writing, at: now) }
    }

    /// The bot of this connection, once its hello was accepted.
    func identify(bot: String) {
        state.withLock { $0.bot = bot }
    }

    /// The first time (per message, write or wait) the loop has been inside one message or one write, or the
    /// reader held back, for longer than `afterMs`: for a warning naming the bot. Nil otherwise (and at every
    /// later tick of the same stall). A store is bounded by the database's statement deadline and a wait for
    /// room by the loop's work, so either lasting minutes says where a connection is stuck.
    func stall(afterMs: Int64) -> Stall? {
        let now = rateClock.nowMs
        return state.withLock { $0.stall(nowMs: now, afterMs: afterMs) }
    }

    /// The ticker's check of this connection, under one lock: `heartbeatDue`, then `tickDue` (a heartbeat counted
    /// as written makes none due), then `stall`.
    func check(heartbeatMs: Int64, stallMs: Int64) -> TickCheck {
        let now = clock.nowMs, monotonic = rateClock.nowMs
        return state.withLock { s in
            let heartbeat = s.heartbeatDue(nowMs: now, intervalMs: heartbeatMs)
            return TickCheck(heartbeat: heartbeat, tick: s.tickDue(nowMs: now, intervalMs: heartbeatMs),
                             stall: s.stall(nowMs: monotonic, afterMs: stallMs))
        }
    }

    /// The loop finished a message of `bytes`; wakes the reader if the backlog fell below the limit. `wantsTicks`:
    /// the loop must now be woken at every tick whatever the clocks say (it holds batches deferred during an outage,
    /// or was let in provisionally, and must learn at once that the database is back; see `tickDue`).
    func handled(bytes: Int, wantsTicks: Bool = false) {
        let (waiter, counted) = state.withLock { s -> (CheckedContinuation<Void, Never>?, Bool) in
            s.stageSinceMs = nil
            s.wantsTicks = wantsTicks
            guard !s.finished else { return (nil, false) }
            s.pendingBytes -= bytes
            guard s.pendingBytes <= maxPendingBytes, let w = s.waiter else { return (nil, true) }
            s.waiter = nil
            return (w, true)
        }
        if counted { backlog?.remove(bytes) }
        waiter?.resume()
    }

    /// Releases a waiting reader, now and later (the connection is ending).
    func finish() {
        let (waiters, dropped) = state.withLock { s -> ([CheckedContinuation<Void, Never>], Int) in
            guard !s.finished else { return ([], 0) }
            s.finished = true
            defer { s.pendingBytes = 0; s.waiter = nil; s.helloWaiter = nil }
            return ([s.waiter, s.helloWaiter].compactMap { $0 }, s.pendingBytes)
        }
        // Messages read but never handled leave the hub-wide backlog with their connection.
        if dropped > 0 { backlog?.remove(dropped) }
        backlog?.unpark(ObjectIdentifier(self))
        waiters.forEach { $0.resume() }
    }

    /// Something was written to the agent.
    func sent() {
        let now = clock.nowMs
        state.withLock { s in
            s.lastSentMs = now
            if s.stage == .writing { s.stageSinceMs = nil }
        }
    }

    /// When the agent was last heard: now while the reader is held back by the hub (rate, backlog).
    var lastReceivedMs: Int64 {
        let now = clock.nowMs
        return state.withLock { $0.waiting ? now : $0.lastReceivedMs }
    }

    /// Since when (monotonic) the reader has waited for room in `awaitRoom`, nil while it does not (tests).
    var heldBackSinceMs: Int64? { state.withLock { $0.heldSinceMs } }

    /// Whether the reader is held back by the hub now (byte rate, backlog).
    var isHeldBack: Bool { state.withLock { $0.waiting } }

    /// Whether the loop has anything to judge at a tick: the hello's deadline (no hello handled yet), a heartbeat
    /// to send (nothing written for `intervalMs`), the agent's silence (nothing read for `intervalMs`, unless the
    /// hub holds the reader back), or it asked for every tick. With one-second batches acknowledged every second,
    /// none of these holds and the connection is not woken.
    func tickDue(intervalMs: Int64) -> Bool {
        let now = clock.nowMs
        return state.withLock { $0.tickDue(nowMs: now, intervalMs: intervalMs) }
    }

    /// Whether the loop is inside a message and nothing was written for `intervalMs`: the ticker then sends
    /// the heartbeat itself, so a slow store never looks like a dead hub to the agent.
    func heartbeatDue(intervalMs: Int64) -> Bool {
        let now = clock.nowMs
        return state.withLock { $0.heartbeatDue(nowMs: now, intervalMs: intervalMs) }
    }
}

/// A byte rate with bursts: `burst` bytes at most are available at once, refilled at `bytesPerSecond`. Taking
/// more than is available answers how long the taker must wait for the debt to be paid.
struct TokenBucket: Sendable, Equatable {
    let bytesPerSecond: Double
    let burst: Double
    private(set) var tokens: Double
    private var refilledMs: Int64

    init(bytesPerSecond: Double, burst: Double, nowMs: Int64) {
        self.bytesPerSecond = bytesPerSecond
        self.burst = burst
        tokens = burst
        refilledMs = nowMs
    }

    /// Takes `cost` bytes at `nowMs`; returns the milliseconds to wait before going on (0 within the rate).
    mutating func take(_ cost: Double, nowMs: Int64) -> Int64 {
        guard bytesPerSecond.isFinite, bytesPerSecond > 0, bytesPerSecond < Double(Int.max) else { return 0 }
        // A clock that went back refills nothing for that step (and takes nothing back); it refills again from
        // the new reading on.
        let elapsed = Double(max(0, nowMs - refilledMs)) / 1000
        tokens = min(burst, tokens + elapsed * bytesPerSecond)
        refilledMs = nowMs
        tokens -= cost
        return tokens < 0 ? Int64(-tokens / bytesPerSecond * 1000) + 1 : 0
    }
}
