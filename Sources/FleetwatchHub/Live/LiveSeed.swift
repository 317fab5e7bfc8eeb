import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

extension LiveFleet {
    /// Fills the fleet from the newest stored batches (up to five per bot from the last 15 minutes), so a
    /// replica that just started shows current values before the next batches arrive.
    func seed(client: any PostgresQuerying, logger: Logger) async throws {
        let updates = try await FleetRoster(client: client, logger: logger).recentPoints().map { p in
            LiveUpdate(bot: p.bot, at: p.at, numbers: p.value.map { [p.metric: $0] } ?? [:], states: p.state.map { [p.metric: $0] } ?? [:])
        }
        apply(updates)
    }
}
