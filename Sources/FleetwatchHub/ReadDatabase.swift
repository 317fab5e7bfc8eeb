import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Where reads that tolerate lag go: a read-only server (a streaming standby, `hub.read_database_url`) when one
/// is configured, so history charts and reports never compete with ingest on the primary; the primary otherwise.
/// Every 2 s it asks the replica how far behind it is, for the dashboard's "up to N s behind".
final class ReadDatabase: Service, Sendable {
    let client: any PostgresQuerying
    let isReplica: Bool
    let logger: Logger
    private let age = Mutex<Double?>(nil)

    init(client: any PostgresQuerying, isReplica: Bool, logger: Logger) {
        self.client = client
        self.isReplica = isReplica
        self.logger = logger
    }

    /// How old the replica's data may be (seconds), nil when reads go to the primary (or the replica has not
    /// answered yet).
    var dataAge: Double? { isReplica ? age.withLock { $0 } : nil }

    func run() async throws {
        // Nothing to watch on the primary, but a service of the group runs until shutdown.
        guard isReplica else { return try await gracefulShutdown() }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let seconds = try await ServerFacts(client: self.client, logger: self.logger).replicationLag()
                    self.age.withLock { $0 = seconds }
                } catch {
                    self.age.withLock { $0 = nil }
                    self.logger.warning("read replica: cannot read its lag: \(String(reflecting: error))")
                }
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }
}
