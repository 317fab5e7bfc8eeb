import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import Testing

/// Ingest while PostgreSQL is unreachable: stores are deferred at once, and only bots whose token this replica
/// verified recently are let back in, provisionally, with the sequence this replica knows was stored.
@Suite struct OutageIngestStoreTests {
    static let epoch: UInt64 = 1_764_072_000_000_000

    static func hello(_ bot: String = "bot-1", token: String = "secret", epoch: UInt64 = epoch) -> Hello {
        Hello(protocolVersion: WireProtocol.version, botID: bot, token: token, agentVersion: "t", bootEpoch: epoch, lastAckedSequence: 0)
    }

    static func batch(_ seq: UInt64) -> ValidatedBatch {
        ValidatedBatch(epoch: epoch, sequence: seq, sentSamples: 1,
                       series: [Series(name: "m", kind: .gauge, timestamps: [1], values: [1])], refusedSamples: 0, firstTimestampMs: 1)
    }

    static func health() throws -> DatabaseHealth {
        // Never run: its state is set by `observed(failure:)`, as a failing probe would.
        DatabaseHealth(url: try DatabaseURL("postgres://nobody@127.0.0.1:1/none", environment: [:]), logger: Logger(label: "t"))
    }

    @Test func provisionalOnlyWithARecentlyVerifiedToken() async throws {
        let inner = InMemoryIngestStore(tokens: ["bot-1": "secret", "bot-2": "other"])
        let health = try Self.health()
        let store = OutageIngestStore(inner: inner, health: health, credentialMaxAge: .seconds(60))
        guard case .accepted(let first) = try await store.authenticate(Self.hello(), connectionID: UUID(), hub: "h") else {
            Issue.record("not accepted"); return
        }
        #expect(!first.provisional)
        _ = try await store.admit(Self.batch(1), session: first)
        #expect(try await store.store(Self.batch(1), session: first) == .stored)
        #expect(try await store.store(Self.batch(2), session: first) == .stored)

        health.observed(failure: "test: the server went away")
        #expect(try await store.store(Self.batch(3), session: first) == .deferred)
        // The same token again: provisional, and told what this replica acknowledged (2), nothing more.
        guard case .accepted(let again) = try await store.authenticate(Self.hello(), connectionID: UUID(), hub: "h") else {
            Issue.record("not accepted during the outage"); return
        }
        #expect(again.provisional && again.storedSequence == 2)
        #expect(try await store.store(Self.batch(3), session: again) == .deferred)
        // A new epoch (the bot restarted): nothing known stored.
        guard case .accepted(let restarted) = try await store.authenticate(Self.hello(epoch: Self.epoch + 1), connectionID: UUID(), hub: "h") else {
            Issue.record("not accepted"); return
        }
        #expect(restarted.storedSequence == 0)
        // A wrong token is refused; a bot never verified here waits for the database (4010 for the agent).
        guard case .refused = try await store.authenticate(Self.hello(token: "guess"), connectionID: UUID(), hub: "h") else {
            Issue.record("wrong token accepted"); return
        }
        await #expect(throws: DatabaseUnavailable.self) { try await store.authenticate(Self.hello("bot-2", token: "other"), connectionID: UUID(), hub: "h") }
        // A revoked token is forgotten at once.
        store.forget(bot: "bot-1")
        await #expect(throws: DatabaseUnavailable.self) { try await store.authenticate(Self.hello(), connectionID: UUID(), hub: "h") }
        #expect(await inner.stored.map(\.batch.sequence) == [1, 2])
    }

    @Test func tooOldAVerificationIsNotEnough() async throws {
        let inner = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let health = try Self.health()
        let store = OutageIngestStore(inner: inner, health: health, credentialMaxAge: .zero)
        _ = try await store.authenticate(Self.hello(), connectionID: UUID(), hub: "h")
        try await Task.sleep(for: .milliseconds(5))
        health.observed(failure: "test")
        await #expect(throws: DatabaseUnavailable.self) { try await store.authenticate(Self.hello(), connectionID: UUID(), hub: "h") }
    }
}
