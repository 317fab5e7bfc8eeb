import Crypto
import FleetwatchIngest
import FleetwatchProtocol
import Foundation
import Synchronization

/// Ingest that keeps going while PostgreSQL is unreachable, without pretending anything was stored.
///
/// Every database step gives up the moment the database is noticed down: a waiting store returns `.deferred` (no
/// ack; the agent keeps the batch) instead of hanging until the pool gives up. Steps race the health probe
/// (`DatabaseHealth.failFast`), except the batch stores of a store that gives up by itself (`StoreGivingUp`: a
/// PostgreSQL store, whose writer answers its waiting stores itself). The connection stays open, so the bot can still be reached by an
/// emergency stop and its batches are still evaluated for alerts. A bot that connects during the outage is let in provisionally if this
/// replica verified the same token within `credentialMaxAge`; otherwise it is closed with 4010 and retries.
public final class OutageIngestStore: IngestStore {
    let inner: any IngestStore
    let health: DatabaseHealth
    let credentialMaxAge: Duration
    let clock: ContinuousClock
    /// The inner store gives up on its waiting batch stores itself when the database goes down (`StoreGivingUp`): a
    /// store of admitted batches needs no race with the health probe.
    let innerGivesUp: Bool

    struct Known {
        var botID: Int32
        var tokenDigest: [UInt8]
        var verifiedAt: ContinuousClock.Instant
        /// Highest acknowledged sequence of the bot's newest epoch here (stored for certain).
        var epoch: UInt64 = 0
        var acknowledged: UInt64 = 0
    }
    private let known = Mutex<[String: Known]>([:])

    public init(inner: any IngestStore, health: DatabaseHealth, credentialMaxAge: Duration = .seconds(900),
                clock: ContinuousClock = ContinuousClock()) {
        self.inner = inner
        self.health = health
        self.credentialMaxAge = credentialMaxAge
        self.clock = clock
        if let givingUp = inner as? any StoreGivingUp {
            givingUp.giveUp(with: health)
            innerGivesUp = true
        } else {
            innerGivesUp = false
        }
    }

    static func digest(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Data(token.utf8))) }

    public func authenticate(_ hello: Hello, connectionID: UUID, hub: String) async throws -> AuthOutcome {
        do {
            let outcome = try await lossNoticed { [inner] in try await inner.authenticate(hello, connectionID: connectionID, hub: hub) }
            if case .accepted(let s) = outcome {
                let now = clock.now
                known.withLock { k in
                    var entry = k[hello.botID] ?? Known(botID: s.botID, tokenDigest: [], verifiedAt: now)
                    entry.botID = s.botID
                    entry.tokenDigest = Self.digest(hello.token)
                    entry.verifiedAt = now
                    if entry.epoch != s.epoch || entry.acknowledged < s.storedSequence {
                        entry.epoch = s.epoch
                        entry.acknowledged = s.storedSequence
                    }
                    k[hello.botID] = entry
                }
            } else {
                _ = known.withLock { $0.removeValue(forKey: hello.botID) }
            }
            return outcome
        } catch let unavailable as DatabaseUnavailable {
            return try provisional(hello, connectionID: connectionID, unavailable)
        }
    }

    /// A session for a bot whose token this replica verified recently; the welcome's stored sequence is the
    /// highest this replica acknowledged for that epoch (certainly stored), so the agent drops nothing unstored.
    private func provisional(_ hello: Hello, connectionID: UUID, _ unavailable: DatabaseUnavailable) throws -> AuthOutcome {
        let now = clock.now
        guard let entry = known.withLock({ $0[hello.botID] }), now - entry.verifiedAt <= credentialMaxAge else {
            throw unavailable
        }
        // Constant-time comparison of the digests.
        let presented = Self.digest(hello.token)
        guard presented.count == entry.tokenDigest.count,
              zip(presented, entry.tokenDigest).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else {
            return .refused("wrong token (checked against the token this replica verified before the database became unreachable)")
        }
        return .accepted(BotSession(botID: entry.botID, botName: hello.botID, connectionID: connectionID, epoch: hello.bootEpoch,
                                    storedSequence: entry.epoch == hello.bootEpoch ? entry.acknowledged : 0, provisional: true))
    }

    /// A batch the store has at hand (`admitWithoutWaiting`) needs no database step, so it does not race the health
    /// probe (no task) and is answered the same whether the database is up or down.
    public func admit(_ batch: ValidatedBatch, session: BotSession) async throws -> ValidatedBatch {
        if let known = admitWithoutWaiting(batch, session: session) { return known }
        do {
            return try await lossNoticed { [inner] in try await inner.admit(batch, session: session) }
        } catch is DatabaseUnavailable {
            return batch
        }
    }

    /// No database step, so no race with the health probe: a provisional session's batch as it is (as `admit`
    /// answers), otherwise what the store has at hand.
    public func admitWithoutWaiting(_ batch: ValidatedBatch, session: BotSession) -> ValidatedBatch? {
        session.provisional ? batch : inner.admitWithoutWaiting(batch, session: session)
    }

    public func store(_ batch: ValidatedBatch, session: BotSession) async throws -> StoreOutcome {
        try await store(run: [batch], session: session)[0]
    }

    public func store(run batches: [ValidatedBatch], session: BotSession) async throws -> [StoreOutcome] {
        guard !session.provisional else { return batches.map { _ in .deferred } }
        // Admitted batches go straight to a store that gives up by itself when the database goes down; others
        // are admitted first, a database step of its own that races the health probe.
        let race = !innerGivesUp || !batches.allSatisfy(\.isAdmitted)
        let result: Result<[StoreOutcome], any Error>
        do {
            result = .success(try await race ? health.failFast { [inner] in try await inner.store(run: batches, session: session) }
                                             : inner.store(run: batches, session: session))
        } catch {
            result = .failure(error)
        }
        return try settle(result, batches: batches, session: session)
    }

    /// Queued at once when the inner store gives up by itself and the batches are admitted (the ingest session's usual
    /// run); otherwise stored before returning, as `store(run:)` does.
    public func submit(run batches: [ValidatedBatch], session: BotSession, after: UInt64?,
                       answer: @escaping @Sendable (Result<[StoreOutcome], any Error>) -> Void) async {
        guard !session.provisional, innerGivesUp, batches.allSatisfy(\.isAdmitted) else {
            return await storing(run: batches, session: session, answer: answer)
        }
        await inner.submit(run: batches, session: session, after: after) { [self] result in
            answer(Result { try settle(result, batches: batches, session: session) })
        }
    }

    /// The inner store's answer as this store gives it: the database noticed down, or a lost connection seen by the
    /// statement itself (before the probe's next round; the health is told at once), defers every batch rather than
    /// closing the connection.
    private func settle(_ result: Result<[StoreOutcome], any Error>, batches: [ValidatedBatch], session: BotSession) throws -> [StoreOutcome] {
        let outcomes: [StoreOutcome]
        switch result {
        case .success(let o): outcomes = o
        case .failure(let error) where error is DatabaseUnavailable:
            return batches.map { _ in .deferred }
        case .failure(let error) where DatabaseHealth.isConnectionLoss(error):
            _ = connectionLost(error)
            return batches.map { _ in .deferred }
        case .failure(let error):
            throw error
        }
        // The highest batch acknowledged: acks are cumulative, so everything up to it is certainly stored.
        if let i = outcomes.lastIndex(where: { $0 == .stored || $0 == .duplicate }) {
            let last = batches[i]
            known.withLock { k in
                guard var entry = k[session.botName] else { return }
                if entry.epoch != last.epoch { entry.epoch = last.epoch; entry.acknowledged = 0 }
                entry.acknowledged = max(entry.acknowledged, last.sequence)
                k[session.botName] = entry
            }
        }
        return outcomes
    }

    /// `failFast`, and a lost connection seen by the step itself (before the probe's next round) is an outage too: the
    /// health is told at once, and the caller gets `DatabaseUnavailable` (deferral) rather than a close.
    private func lossNoticed<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await health.failFast(body)
        } catch let error where DatabaseHealth.isConnectionLoss(error) {
            throw connectionLost(error)
        }
    }

    /// Tells the health at once that a statement lost its connection.
    private func connectionLost(_ error: any Error) -> DatabaseUnavailable {
        health.observed(failure: "a statement lost its connection: \(String(describing: error).prefix(200))")
        return DatabaseUnavailable(state: health.current)
    }

    public func release(_ session: BotSession) async {
        guard !session.provisional, health.isUp else { return }
        // Left to finish when given up on: a lease given back late (guarded by this connection's id) is still wanted,
        // or the bot looks connected here until it reconnects.
        _ = try? await health.failFast(cancelling: false) { [inner] in await inner.release(session) }
    }

    /// Forgets `bot`'s verified token (revoked or rotated).
    public func forget(bot: String) {
        _ = known.withLock { $0.removeValue(forKey: bot) }
    }
}
