import FleetwatchStorage
import Logging
import ServiceLifecycle

/// Deletes audit-log rows (and long-ended sign-in sessions) older than `hub.audit_retention_days`, every
/// `interval`, in batches so that no statement holds the table long. Every replica runs it; the deletes are
/// idempotent.
struct AuditPruner: Service {
    let audit: AuditLog
    let retentionDays: Int
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    var total = 0
                    while !Task.isCancelled {
                        let n = try await audit.prune(olderThanDays: retentionDays)
                        total += n
                        if n < 10_000 { break }
                    }
                    if total > 0 { logger.info("audit log: deleted \(total) rows older than \(retentionDays) days") }
                } catch {
                    logger.warning("audit log retention: \(String(reflecting: error))")
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
