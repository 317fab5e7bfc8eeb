import FleetwatchAlerting
import FleetwatchProtocol
import Logging
import Synchronization

/// Fans each alert event out to every channel, each in its own task, so a slow or dead channel never
/// delays another one or the caller. Retries retryable failures with capped exponential backoff; every
/// attempt goes to the ledger.
public final class Dispatcher: AlertSink {
    public struct RetryPolicy: Sendable {
        public var maxAttempts = 5
        public var initialDelay: Duration = .milliseconds(200)
        public var maximumDelay: Duration = .seconds(10)
        public init() {}
    }

    private let notifiers = Mutex<[any Notifier]>([])
    let ledger: (any NotificationLedger)?
    let retry: RetryPolicy
    let logger: Logger

    public init(notifiers: [any Notifier], ledger: (any NotificationLedger)?, retry: RetryPolicy = RetryPolicy(), logger: Logger) {
        self.notifiers.withLock { $0 = notifiers }
        self.ledger = ledger
        self.retry = retry
        self.logger = logger
    }

    public func deliver(_ event: AlertEvent) async {
        let targets = notifiers.withLock { $0 }.filter { event.level >= $0.minimumLevel }
        for notifier in targets {
            Task { await self.send(event, to: notifier) }
        }
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
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, retry.maximumDelay)
            }
        }
    }
}
