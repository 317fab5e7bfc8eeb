@testable import FleetwatchHub
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

/// An operator's stop is answered once: a stop whose ledger call is given up on when the database is noticed down
/// (break glass answers it instead) is never written later.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct StopGivenUpTests {
    /// The ledger's only connection is held, so the stop waits for it. The database is noticed down: break glass
    /// refuses the stop, since a stop during an outage never liquidates. Then the connection is free again. Before,
    /// the waiting ledger call went on and wrote the stop with its liquidation, latching the bot: a stop the operator
    /// was told was refused, delivered as soon as a replica saw it.
    @Test(.timeLimit(.minutes(2)))
    func aStopGivenUpOnWhileWaitingForAConnectionIsNotWrittenLater() async throws {
        try await InProcessHub.run(ledgerConnections: 1, breakGlass: true) { hub, http in
            var op = try await hub.token("ci-operator", .operator)
            try await hub.client.query("""
                INSERT INTO bots (name, token_hash, allow_liquidation) VALUES ('glass', \(BotToken.hash("secret")), true)
                """, logger: hub.logger)
            // Verified once while the database is up, so the replica accepts the token during the outage.
            #expect(try await http.execute(uri: "/api/bots", method: .get, headers: op).status == .ok)
            op[.contentType] = "application/json"
            let headers = op
            let answer = try await hub.ledgerClient.withConnection { _ in
                async let response = http.execute(uri: "/api/bots/glass/emergency-stop", method: .post, headers: headers,
                                                  body: ByteBuffer(string: #"{"reason": "runaway", "liquidate": true}"#))
                try await Task.sleep(for: .seconds(1))     // the stop waits for the ledger's connection
                hub.health.observed(failure: "test: the database is down")
                return try await response
            }
            #expect(answer.status == .conflict)
            #expect(try json(APIError.self, answer).error.message.contains("never liquidates"))
            // The connection is free again: nothing comes.
            try await Task.sleep(for: .seconds(2))
            let written = try await hub.client.query("SELECT count(*) FROM commands", logger: hub.logger).decode(Int64.self).all()
            #expect(written == [0])
            let latched = try await hub.client.query("""
                SELECT emergency_command_id IS NOT NULL FROM bots WHERE name = 'glass'
                """, logger: hub.logger).decode(Bool.self).all()
            #expect(latched == [false])
        }
    }
}
