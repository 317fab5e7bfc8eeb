import Logging
import PostgresNIO

/// Publishes a message to every replica LISTENing on a channel (`pg_notify`, delivered at commit). A payload is
/// at most 8,000 bytes: callers split larger ones.
public struct Broadcast: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func publish(_ channel: String, _ payload: String) async throws {
        try await client.query("SELECT pg_notify(\(channel), \(payload))", logger: logger)
    }
}
