import FleetwatchProtocol
import Logging
import ServiceLifecycle
import Synchronization

/// Automatic stops waiting for the database to answer (`AutomaticStop.writeWhenUp`), one task each. They live in this
/// process only: a hub asked to stop lets them finish for a moment (the database may just be back), then cancels the
/// rest and names each bot whose stop was never settled, so that an operator stops it by hand.
final class WaitingStops: Sendable {
    private struct Waiting {
        var bot: String
        var reason: String
        var task: Task<Void, Never>
    }

    private struct State {
        var waiting: [CommandID: Waiting] = [:]
        /// `abandonAll` has begun: a stop started now is named at once, and ended tasks are left for it to judge.
        var closed = false
    }

    private let state = Mutex(State())
    private let logger: Logger
    /// How long `abandonAll` lets waiting stops finish before it cancels them.
    let grace: Duration

    init(logger: Logger, grace: Duration = .seconds(3)) {
        self.logger = logger
        self.grace = grace
    }

    /// Runs `body` for the stop `id` of `bot` until it ends or `abandonAll` cancels it. `body` calls `settled` once
    /// the stop needs nothing more (written, found written, or left to a later decision), before anything else.
    func start(id: CommandID, bot: String, reason: String,
               _ body: @escaping @Sendable (_ settled: @escaping @Sendable () -> Void) async -> Void) {
        let started = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            // Registered before the task can end (its end takes the same lock).
            s.waiting[id] = Waiting(bot: bot, reason: reason, task: Task {
                await body { _ = self.state.withLock { $0.waiting.removeValue(forKey: id) } }
                self.state.withLock { s in if !s.closed { s.waiting[id] = nil } }
            })
            return true
        }
        if !started { lost(bot: bot, reason: reason) }
    }

    /// The bots whose stops wait.
    var bots: [String] { state.withLock { $0.waiting.values.map(\.bot) }.sorted() }

    /// Lets the waiting stops finish for `grace`, then cancels the rest, waits for them to end, and logs each one that
    /// never settled. Returns their bots.
    @discardableResult
    func abandonAll() async -> [String] {
        state.withLock { $0.closed = true }
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline, !state.withLock({ $0.waiting.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let left = state.withLock { $0.waiting }
        for stop in left.values { stop.task.cancel() }
        for stop in left.values { await stop.task.value }
        let unsettled = state.withLock { s in
            defer { s.waiting = [:] }
            return s.waiting.values.sorted { $0.bot < $1.bot }
        }
        for stop in unsettled { lost(bot: stop.bot, reason: stop.reason) }
        return unsettled.map(\.bot)
    }

    private func lost(bot: String, reason: String) {
        logger.critical("automatic emergency shutdown of \(bot) was never recorded: the hub stopped while it waited for the database (\(reason)); stop the bot by hand unless its commands show it")
    }
}

/// Abandons the waiting automatic stops when the hub stops (`WaitingStops.abandonAll`).
struct WaitingStopsService: Service {
    let stops: WaitingStops

    func run() async throws {
        try? await gracefulShutdown()
        await stops.abandonAll()
    }
}
