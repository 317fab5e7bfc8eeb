import FleetwatchStorage
import Logging
import ServiceLifecycle

/// Every `interval`, compares the agent connections this replica holds with the leases in PostgreSQL and closes
/// any that no longer hold theirs (another connection took over: 4007; the token was revoked or rotated: 4002).
/// The lease and token notifications do this at once; this pass catches one missed while the replica's LISTEN
/// connection was reconnecting.
struct LeaseChecker: Service {
    let connections: LiveConnections
    let store: PostgresIngestStore
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                let asOf = ContinuousClock.now
                do {
                    let holders = try await store.leaseHolders(bots: await connections.bots)
                    let closed = await connections.reconcile(holders: holders, asOf: asOf)
                    if closed > 0 { logger.notice("closed \(closed) agent connection(s) that no longer held their bot's lease") }
                } catch {
                    logger.warning("lease check failed: \(String(reflecting: error))")
                }
            }
        }
    }
}
