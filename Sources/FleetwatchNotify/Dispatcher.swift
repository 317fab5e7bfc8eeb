import FleetwatchAlerting
import FleetwatchProtocol
import Logging
import Synchronization

/// Fans each alert event out to every channel, each in its own child task of `run`, so a slow or dead channel
/// never delays another one or the caller. Retries retryable failures with capped exponential backoff; every
/// attempt goes to the ledger. `finish` ends it: events after it are not sent (and say so in the log), sends
/// under way finish their current attempt and retry no more, and `run` returns when they have.
public final class Dispatcher: AlertSink {
    public struct RetryPolicy: Sendable {
        public var maxAttempts = 5
        public var initialDelay: Duration = .milliseconds(200)
        public var maximumDelay: Duration = .seconds(10)
        public init() {}
    }

    private let notifiers: [any Notifier]
    let ledger: (any NotificationLedger)?
    let retry: RetryPolicy
    let logger: Logger
    private let jobs: AsyncStream<(AlertEvent, any Notifier)>
    private let jobsContinuation: AsyncStream<(AlertEvent, any Notifier)>.Continuation
    private let stopping = Atomic<Bool>(false)

    public init(notifiers: [any Notifier], ledger: (any NotificationLedger)?, retry: RetryPolicy = RetryPolicy(), logger: Logger) {
        self.notifiers = notifiers
        self.ledger = ledger
        self.retry = retry
        self.logger = logger
        (jobs, jobsContinuation) = AsyncStream.makeStream(of: (AlertEvent, any Notifier).self)
    }

    /// Hands `event` to every channel of its level without waiting for any of them.
    public func deliver(_ event: AlertEvent) async {
        for notifier in notifiers where event.level >= notifier.minimumLevel {
            if case .terminated = jobsContinuation.yield((event, notifier)) {
                logger.warning("alert \(event.alertID) \(event.kind.rawValue) not sent by \(notifier.name): the hub is stopping")
            }
        }
    }

    /// Sends what `deliver` hands over, each send a child task, until `finish` and every send under way is done; then
    /// waits for the ledger to have written their attempts.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await (event, notifier) in jobs {
                group.addTask { await self.send(event, to: notifier) }
            }
        }
        await ledger?.flush()
    }

    /// No new events; sends under way end after their current attempt.
    public func finish() {
        stopping.store(true, ordering: .relaxed)
        jobsContinuation.finish()
    }

    private func send(_ event: AlertEvent, to notifier: any Notifier) async {
        if event.silenced && !notifier.receivesSilenced {
            await ledger?.record(event, channel: notifier.name, attempt: 0, outcome: "silenced", error: nil, durationMs: 0)
            return
        }
        var delay = retry.initialDelay
        for attempt in 1...max(retry.maxAttempts, 1) {
            let start = ContinuousClock.now
            do {
                try await notifier.notify(event)
                await ledger?.record(event, channel: notifier.name, attempt: attempt, outcome: "delivered", error: nil,
                                     durationMs: (ContinuousClock.now - start).inMilliseconds)
                return
            } catch {
                let retryable = (error as? NotifyError)?.retryable ?? true
                let last = !retryable || attempt == retry.maxAttempts
                await ledger?.record(event, channel: notifier.name, attempt: attempt, outcome: last ? "failed" : "retrying",
                                     error: "\(error)", durationMs: (ContinuousClock.now - start).inMilliseconds)
                if last {
                    logger.error("alert \(event.alertID) \(event.kind.rawValue) not delivered by \(notifier.name) after \(attempt) attempt(s): \(error)")
                    return
                }
                await pause(delay)
                if stopping.load(ordering: .relaxed) {
                    logger.error("alert \(event.alertID) \(event.kind.rawValue) not delivered by \(notifier.name): the hub stopped before attempt \(attempt + 1)")
                    return
                }
                delay = min(delay * 2, retry.maximumDelay)
            }
        }
    }

    /// Waits `delay`, or less once the dispatcher is stopping.
    private func pause(_ delay: Duration) async {
        let end = ContinuousClock.now + delay
        while ContinuousClock.now < end, !stopping.load(ordering: .relaxed) {
            try? await Task.sleep(for: min(.milliseconds(100), end - ContinuousClock.now))
        }
    }
}
