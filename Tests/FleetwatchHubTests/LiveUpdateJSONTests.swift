@testable import FleetwatchHub
import Foundation
import Testing

@Suite struct LiveUpdateJSONTests {
    static func decoded(_ json: String) throws -> LiveUpdate {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return try decoder.decode(LiveUpdate.self, from: Data(json.utf8))
    }

    /// What the hand-written encoder writes, `JSONDecoder` reads back as the same update: awkward names and
    /// states, and numbers at the edges of `Double`.
    @Test func readsBackAsTheSameUpdate() throws {
        let update = LiveUpdate(
            bot: "bot \"quoted\" \\ back\tslash",
            at: Date(timeIntervalSince1970: 1_764_860_000.123),
            numbers: ["a": 0.1, "tiny": 1e-05, "huge": 5e+20, "neg": -42, "max": .greatestFiniteMagnitude,
                      "min": .leastNonzeroMagnitude, "zero": 0, "big_int": 9_007_199_254_740_992, "ünï": 1.5],
            states: ["ws": "connected", "ctl": "a\u{01}b\nc\r\u{1F}", "emoji": "ok 🚀", "empty": "", "q": "\"\\\""])
        let back = try Self.decoded(LiveUpdateJSON.encode(update))
        #expect(back == update)
    }

    /// JSON has no NaN or infinity: such a value is left out, the rest of the update travels.
    @Test func nonFiniteNumbersAreLeftOut() throws {
        let update = LiveUpdate(bot: "b", at: Date(timeIntervalSince1970: 1_700_000_000),
                                numbers: ["nan": .nan, "inf": .infinity, "ninf": -.infinity, "ok": 2], states: [:])
        let back = try Self.decoded(LiveUpdateJSON.encode(update))
        #expect(back.numbers == ["ok": 2])
    }

    /// The publishing replica skips its own notifications (it applied them already); another replica's, and
    /// payloads without an origin (an older replica), are read.
    @Test func aReplicaSkipsItsOwnPayloads() throws {
        let update = LiveUpdate(bot: "b1", at: Date(timeIntervalSince1970: 1_700_000_000), numbers: ["x": 1], states: ["s": "up"])
        let payloads = LivePublisher.pack([update], origin: "replica-a")
        #expect(payloads.count == 1)
        #expect(LivePublisher.decode(payloads[0], skipping: "replica-a").isEmpty)
        #expect(LivePublisher.decode(payloads[0], skipping: "replica-b") == [update])
        let older = LivePublisher.pack([update])
        #expect(LivePublisher.decode(older[0], skipping: "replica-a") == [update])
    }

    /// With the origin in front, every payload still fits PostgreSQL's notification limit.
    @Test func payloadsWithTheirOriginStayUnderTheLimit() throws {
        let numbers = Dictionary(uniqueKeysWithValues: (0..<1000).map { ("order_\($0)", Double($0) + 0.5) })
        let update = LiveUpdate(bot: "big", at: Date(timeIntervalSince1970: 1_700_000_000), numbers: numbers, states: [:])
        let origin = UUID().uuidString
        let payloads = LivePublisher.pack([update], origin: origin)
        #expect(payloads.count > 1)
        #expect(payloads.allSatisfy { $0.utf8.count <= LivePublisher.payloadLimit })
        var merged: [String: Double] = [:]
        for u in payloads.flatMap({ LivePublisher.decode($0, skipping: "other") }) { merged.merge(u.numbers) { _, new in new } }
        #expect(merged == numbers)
    }
}
