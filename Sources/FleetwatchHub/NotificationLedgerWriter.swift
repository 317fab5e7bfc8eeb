import FleetwatchStorage
import Logging
import PostgresNIO

/// Writes the notification ledger in groups: the delivery attempts recorded while one statement is written go into
/// the next (up to `maxGroup`), so an alert storm (a fleet-wide incident firing thousands of alerts, each sent on
/// several channels) costs a few statements instead of a transaction per attempt, and no channel waits for the
/// database to go on delivering. An idle hub still writes each attempt at once.
///
/// At most `maxWaiting` attempts wait (the database slow, or unreachable and not yet noticed); past that, attempts
/// are not recorded, and the log says how many (the alerts were still sent). A group the database could not take is
/// logged, as a single attempt was before.
actor NotificationLedgerWriter {
    static let maxWaiting = 10_000
    static let maxGroup = 1_000

    private let history: AlertHistory
    private let hubID: String
    private let health: DatabaseHealth?
    private let logger: Logger
    private var waiting: [AlertHistory.Delivery] = []
    private var writing = false
    private var dropped = 0
    private var whenWritten: [CheckedContinuation<Void, Never>] = []
    /// Statements written (for tests).
    private(set) var statements = 0

    init(history: AlertHistory, hubID: String, health: DatabaseHealth? = nil, logger: Logger) {
        self.history = history
        self.hubID = hubID
        self.health = health
        self.logger = logger
    }

    /// Queues `delivery` for the ledger and returns at once.
    func add(_ delivery: AlertHistory.Delivery) {
        guard waiting.count < Self.maxWaiting else {
            dropped += 1
            if dropped == 1 || dropped % 1_000 == 0 { logDropped() }
            return
        }
        waiting.append(delivery)
        guard !writing else { return }
        writing = true
        Task { await self.drain() }
    }

    /// Returns once nothing waits to be written: every attempt queued before the call is written, or failed to be
    /// (during a storm that lasts, that is when the storm's queue has run dry).
    func written() async {
        guard writing else { return }
        await withCheckedContinuation { whenWritten.append($0) }
    }

    private func drain() async {
        while !waiting.isEmpty {
            let group = Array(waiting.prefix(Self.maxGroup))
            waiting.removeFirst(group.count)
            do {
                try await write(group)
            } catch let error as PSQLError where group.count > 1 && error.refusesTheData {
                await writeOneByOne(group)
            } catch {
                log(error, group)
            }
        }
        if dropped > 0 { logger.error("notification ledger: \(dropped) delivery attempt(s) not recorded in all while the queue was full") }
        writing = false
        dropped = 0
        let waiters = whenWritten
        whenWritten.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    /// After PostgreSQL refused a group for one attempt's data: each alone, so only that one is missing. Stops at the
    /// first failure that is not an attempt's data (the database went away): the rest are logged together.
    private func writeOneByOne(_ group: [AlertHistory.Delivery]) async {
        for (i, delivery) in group.enumerated() {
            do {
                try await write([delivery])
            } catch let error as PSQLError where error.refusesTheData {
                log(error, [delivery])
            } catch {
                return log(error, Array(group[i...]))
            }
        }
    }

    private func write(_ group: [AlertHistory.Delivery]) async throws {
        statements += 1
        if let health {
            // Cancelled when given up on (`failFast`): a group still waiting for a connection is then not written after
            // all once the database is back, as the log would say it was not.
            try await health.failFast { [history, hubID] in try await history.recordDeliveries(group, hub: hubID) }
        } else {
            try await history.recordDeliveries(group, hub: hubID)
        }
    }

    private func log(_ error: any Error, _ group: [AlertHistory.Delivery]) {
        let first = group[0]
        logger.error("notification ledger: \(group.count) delivery attempt(s) not recorded, from \(first.channel) attempt \(first.attempt) of alert \(first.alertID) (the alerts were sent): \(String(reflecting: error))")
    }

    private func logDropped() {
        logger.error("notification ledger: \(dropped) delivery attempt(s) not recorded: \(Self.maxWaiting) already wait for the database (the alerts were sent; check that PostgreSQL answers)")
    }
}
