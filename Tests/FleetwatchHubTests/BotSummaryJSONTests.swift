@testable import FleetwatchHub
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Hummingbird
import Testing

@Suite struct BotSummaryJSONTests {
    /// What Hummingbird's default response encoder writes.
    static func reference(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(value)
    }

    static func handWritten(_ summaries: [FleetView.BotSummary]) -> Data {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, s) in summaries.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            BotSummaryJSON.object(s, into: &out)
        }
        out.append(UInt8(ascii: "]"))
        return Data(out)
    }

    static let awkward = ["", "plain", "quote\"back\\slash", "tab\tnew\nline\u{01}\u{1F}", "ünïcødé ✓ 🚀", "</script>", "\u{7F}"]

    static func randomSummary(_ rng: inout SplitMix) -> FleetView.BotSummary {
        func pick<T>(_ values: [T]) -> T { values[Int(rng.next() % UInt64(values.count))] }
        func date() -> Date? {
            if rng.next() % 4 == 0 { return nil }
            // 1950 to 2100, with fractions of a second.
            return Date(timeIntervalSince1970: Double(Int64(rng.next() % 4_733_510_400) - 631_152_000) + Double(rng.next() % 1000) / 1000)
        }
        let numbers = Dictionary((0..<Int(rng.next() % 6)).map { i in
            ("\(pick(awkward))m\(i)", pick([0, -0.0, 1, -1.5, 0.1, 1e-300, 1.7976931348623157e308, 123_456_789.125, Double(rng.next() % 1_000_000) / 7]))
        }, uniquingKeysWith: { a, _ in a })
        let states = Dictionary((0..<Int(rng.next() % 4)).map { i in ("\(pick(awkward))s\(i)", pick(awkward)) }, uniquingKeysWith: { a, _ in a })
        return FleetView.BotSummary(
            id: pick(awkward) + "bot", profile: pick(["default", "conservative", "aggressive"]), state: pick(["online", "stale", "offline", "emergency"]),
            connected: rng.next() % 2 == 0, connectedHub: rng.next() % 2 == 0 ? nil : pick(awkward),
            agentVersion: rng.next() % 2 == 0 ? nil : "swift/0.\(rng.next() % 9)", firstSeen: date(), lastSeen: date(),
            createdAt: date() ?? Date(timeIntervalSince1970: 0), emergencySince: date(),
            emergencyCommandId: rng.next() % 2 == 0 ? nil : CommandID(UUID().uuidString), allowLiquidation: rng.next() % 2 == 0,
            metricsAt: date(), metrics: numbers, states: states,
            alerts: .init(critical: Int64(rng.next() % 3), warning: Int64.max - Int64(rng.next() % 2), info: 0))
    }

    /// The same JSON document as JSONEncoder's (member order and number spelling may differ).
    @Test func writesWhatJSONEncoderWrites() throws {
        var rng = SplitMix(seed: 11)
        for size in [0, 1, 2, 50] {
            for _ in 0..<40 {
                let summaries = (0..<size).map { _ in Self.randomSummary(&rng) }
                let mine = try JSONSerialization.jsonObject(with: Self.handWritten(summaries)) as? NSArray
                let theirs = try JSONSerialization.jsonObject(with: Self.reference(summaries)) as? NSArray
                #expect(mine != nil && mine == theirs)
            }
        }
    }

    @Test func datesAreWrittenToTheSecondInUTC() throws {
        for seconds in [0.0, 0.999, -0.5, -1, 86_399.9, 951_782_400 /* 2000-02-29 */, 4_102_444_799, -631_152_000, 1_764_072_000.5] {
            var out: [UInt8] = []
            ISO8601Seconds.write(Date(timeIntervalSince1970: seconds), into: &out)
            let encoded = try JSONDecoder().decode(String.self, from: Self.reference(Date(timeIntervalSince1970: seconds)))
            #expect(String(decoding: out, as: UTF8.self) == encoded, "\(seconds)")
        }
    }

    @Test func nonFiniteValuesAreLeftOut() throws {
        var rng = SplitMix(seed: 3)
        let s = Self.randomSummary(&rng)
        let withBad = FleetView.BotSummary(
            id: s.id, profile: s.profile, state: s.state, connected: s.connected, connectedHub: s.connectedHub, agentVersion: s.agentVersion,
            firstSeen: s.firstSeen, lastSeen: s.lastSeen, createdAt: s.createdAt, emergencySince: s.emergencySince,
            emergencyCommandId: s.emergencyCommandId, allowLiquidation: s.allowLiquidation, metricsAt: s.metricsAt,
            metrics: ["nan": .nan, "inf": .infinity, "ok": 2], states: s.states, alerts: s.alerts)
        let object = try #require(try JSONSerialization.jsonObject(with: Self.handWritten([withBad])) as? [[String: Any]])
        #expect((object[0]["metrics"] as? [String: Double]) == ["ok": 2])
    }
}
