import FleetwatchProtocol
import Logging
import ServiceLifecycle
import Synchronization

/// Automatic stops waiting for the database to answer (`AutomaticStop.writeWhenUp`), one task each. A hub asked to
/// stop while some still wait cancels them and says which bots' stops were never recorded, so that an operator stops
/// them by hand: they live in this process only, and end with it.
final class WaitingStops: Sendable {
    private struct Waiting {
        var bot: String
        var reason: String
        var task: Task<Void, Never>
    }

    private let waiting = Mutex<[CommandID: Waiting]>([:])
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Runs `body` for the stop `id` of `bot` until it ends or `abandonAll` cancels it.
    func start(id: CommandID, bot: String, reason: String, _ body: @escaping @Sendable () async -> Void) {
        waiting.withLock { w in
            // Registered before the task can end (its end takes the same lock).
            w[id] = Waiting(bot: bot, reason: reason, task: Task {
                await body()
                _ = self.waiting.withLock { $0.removeValue(forKey: id) }
            })
        }
    }

    /// The bots whose stops wait.
    var bots: [String] { waiting.withLock { $0.values.map(\.bot) }.sorted() }

    /// Cancels every waiting stop and logs each as not recorded; returns their bots.
    @discardableResult
    func abandonAll() -> [String] {
        let all = waiting.withLock { w in
            defer { w = [:] }
            return Array(w.values)
        }
        for stop in all.sorted(by: { $0.bot < $1.bot }) {
            stop.task.cancel()
            logger.critical("automatic emergency shutdown of \(stop.bot) was never recorded: the hub stopped while it waited for the database (\(stop.reason)); stop the bot by hand")
        }
        return all.map(\.bot).sorted()
    }
}

/// Abandons the waiting automatic stops when the hub stops (`WaitingStops.abandonAll`).
struct WaitingStopsService: Service {
    let stops: WaitingStops

    func run() async throws {
        try? await gracefulShutdown()
        stops.abandonAll()
    }
}
