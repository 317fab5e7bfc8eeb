import FleetwatchProtocol
import Logging
import ServiceLifecycle
import Synchronization

/// Automatic stops waiting for the database to answer (`AutomaticStop.writeWhenUp`), one task each. They live in this
/// process only: a hub asked to stop lets them finish for a moment (the database may just be back), then cancels the
/// rest and names each bot whose stop was not settled, so that an operator stops it by hand. The names are logged
/// within `grace` and two seconds, whatever the cancelled tasks still wait for (a statement under way is not
/// interrupted by postgres-nio).
final class WaitingStops: Sendable {
    private struct Waiting {
        var bot: String
        var reason: String
        var task: Task<Void, Never>
        /// The task ended without settling, after `abandonAll` began.
        var ended = false
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
                self.state.withLock { s in if !s.closed { s.waiting[id] = nil } else { s.waiting[id]?.ended = true } }
            })
            return true
        }
        if !started { lost(bot: bot, reason: reason) }
    }

    /// The bots whose stops wait.
    var bots: [String] { state.withLock { $0.waiting.values.map(\.bot) }.sorted() }

    /// Lets the waiting stops finish for `grace`, then cancels the rest, gives them up to two seconds to end, and logs
    /// each one still not settled. Returns their bots.
    @discardableResult
    func abandonAll() async -> [String] {
        state.withLock { $0.closed = true }
        await wait(for: grace) { $0.values.allSatisfy(\.ended) }
        for stop in state.withLock({ $0.waiting.values }) { stop.task.cancel() }
        await wait(for: .seconds(2)) { $0.values.allSatisfy(\.ended) }
        let unsettled = state.withLock { s in
            defer { s.waiting = [:] }
            return s.waiting.values.sorted { $0.bot < $1.bot }
        }
        for stop in unsettled { lost(bot: stop.bot, reason: stop.reason) }
        return unsettled.map(\.bot)
    }

    /// Until `done` holds for the waiting stops or `limit` passes (at once if the calling task is cancelled).
    private func wait(for limit: Duration, until done: ([CommandID: Waiting]) -> Bool) async {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline, !state.withLock({ done($0.waiting) }) {
            do { try await Task.sleep(for: .milliseconds(50)) } catch { return }
        }
    }

    private func lost(bot: String, reason: String) {
        logger.critical("automatic emergency shutdown of \(bot) was not recorded by the time the hub stopped: it waited for the database (\(reason)); stop the bot by hand unless its commands show it")
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
