import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import NIOCore

/// Frames and payloads with fixed contents, shared by the golden, round-trip and malformed-input tests.
enum Fixtures {
    static let hello = Frame.hello(Hello(protocolVersion: 1, botID: "kraken-btc-01", token: "fwb_secret", agentVersion: "swift/0.1.0",
                                         bootEpoch: 1_764_072_000_000_000, lastAckedSequence: 41))
    static let welcome = Frame.welcome(Welcome(protocolVersion: 1, bootEpoch: 1_764_072_000_000_000, storedSequence: 41,
                                               heartbeatIntervalMs: 5000, maxFrameBytes: 1 << 20, maxPayloadBytes: 4 << 20,
                                               maxSamplesPerBatch: 20_000))
    static let ack = Frame.ack(Ack(bootEpoch: 1_764_072_000_000_000, sequence: 42, outcome: .stored))
    // Protocol v2: the same hello and welcome with version 2, and the ack that says what was refused.
    static let helloV2 = Frame.hello(Hello(protocolVersion: 2, botID: "kraken-btc-01", token: "fwb_secret", agentVersion: "swift/0.2.0",
                                           bootEpoch: 1_764_072_000_000_000, lastAckedSequence: 41))
    static let welcomeV2 = Frame.welcome(Welcome(protocolVersion: 2, bootEpoch: 1_764_072_000_000_000, storedSequence: 41,
                                                 heartbeatIntervalMs: 5000, maxFrameBytes: 1 << 20, maxPayloadBytes: 4 << 20,
                                                 maxSamplesPerBatch: 20_000))
    static let ackV2 = Frame.ack(Ack(bootEpoch: 1_764_072_000_000_000, sequence: 42, outcome: .stored, refusedSamples: 0))
    static let ackV2Refused = Frame.ack(Ack(bootEpoch: 1_764_072_000_000_000, sequence: 43, outcome: .stored, refusedSamples: 1200,
                                            refusals: [.metricNameLimit, .invalidValue]))
    static let heartbeat = Frame.heartbeat(Heartbeat(sentAtMs: 1_764_072_000_123))
    static let command = Frame.command(CommandFrame(commandID: CommandID(bytes: (0..<16).map(UInt8.init))!, botID: "kraken-btc-01", issuedAtMs: 1_764_072_000_000,
                                                    expiresAtMs: 1_764_072_060_000, actions: [.stopTrading, .cancelOrders, .latchEmergency],
                                                    reason: "daily loss"))
    static let commandResult = Frame.commandResult(CommandResultFrame(commandID: CommandID(bytes: (0..<16).map(UInt8.init))!, step: 2, status: .succeeded,
                                                                      atMs: 1_764_072_000_500, detail: "3 orders cancelled"))
    static let emergencyDeclaration = Frame.emergencyDeclaration(EmergencyDeclaration(
        commandID: CommandID(bytes: (16..<32).map(UInt8.init))!, declaredAtMs: 1_764_072_000_700, actions: [.stopTrading, .cancelOrders, .latchEmergency],
        reason: "exchange halted withdrawals"))

    /// A small batch: a counter, a gauge with cents, a duration and a state.
    static let payload = BatchPayload(series: [
        Series(name: "trades_executed", kind: .counter, timestamps: [1_764_072_000_000, 1_764_072_001_000], values: [10, 12]),
        Series(name: "daily_pnl", kind: .gauge, timestamps: [1_764_072_000_000, 1_764_072_001_000], values: [-12.5, -12.25]),
        Series(name: "trade_execution_time", kind: .duration, timestamps: [1_764_072_000_400], values: [0.1 + 0.2]),
        Series(name: "websocket_status", kind: .state, timestamps: [1_764_072_000_000, 1_764_072_001_000],
               states: ["connected", "connected"]),
    ])

    static let helloV3 = Frame.hello(Hello(protocolVersion: 3, botID: "kraken-btc-01", token: "fwb_secret", agentVersion: "swift/0.3.0",
                                           bootEpoch: 1_764_072_000_000_000, lastAckedSequence: 41))
    static let welcomeV3 = Frame.welcome(Welcome(protocolVersion: 3, bootEpoch: 1_764_072_000_000_000, storedSequence: 41,
                                                 heartbeatIntervalMs: 5000, maxFrameBytes: 1 << 20, maxPayloadBytes: 4 << 20,
                                                 maxSamplesPerBatch: 20_000))

    /// Three one-second batches of `payload`'s metrics, as protocol 3 sends them one after another (§11.6).
    static let deltaStream: [BatchPayload] = [
        BatchPayload(series: [
            Series(name: "trades_executed", kind: .counter, timestamps: [1_764_072_000_000], values: [10]),
            Series(name: "daily_pnl", kind: .gauge, timestamps: [1_764_072_000_000], values: [-12.5]),
            Series(name: "trade_execution_time", kind: .duration, timestamps: [1_764_072_000_400], values: [0.1 + 0.2]),
            Series(name: "websocket_status", kind: .state, timestamps: [1_764_072_000_000], states: ["connected"]),
        ]),
        BatchPayload(series: [
            Series(name: "trades_executed", kind: .counter, timestamps: [1_764_072_001_000], values: [12]),
            Series(name: "daily_pnl", kind: .gauge, timestamps: [1_764_072_001_000], values: [-12.25]),
            Series(name: "websocket_status", kind: .state, timestamps: [1_764_072_001_000], states: ["connected"]),
        ]),
        BatchPayload(series: [
            Series(name: "trades_executed", kind: .counter, timestamps: [1_764_072_002_000], values: [13]),
            Series(name: "daily_pnl", kind: .gauge, timestamps: [1_764_072_002_001], values: [-12.25]),
            Series(name: "websocket_status", kind: .state, timestamps: [1_764_072_002_000], states: ["reconnecting"]),
        ]),
    ]

    /// A realistic batch of `ticks` flushes of 50 metrics, as the simulated bot reports them.
    static func realistic(ticks: Int = 20, metrics: Int = 50, seed: UInt64 = 7) -> BatchPayload {
        var rng = SplitMix(seed: seed)
        var series: [Series] = []
        let t0: Int64 = 1_764_072_000_000
        for m in 0..<metrics {
            let ts = (0..<ticks).map { t0 + Int64($0) * 1000 + Int64(rng.next() % 3) }
            var values: [Double] = []
            var v = Double(rng.next() % 1000)
            for _ in 0..<ticks {
                switch m % 5 {
                case 0: v += Double(rng.next() % 5)                                         // counter
                case 1: v = ((v + Double(Int(rng.next() % 201) - 100) / 100) * 100).rounded() / 100   // PnL in cents
                case 2: v = Double(40 + rng.next() % 30) + Double(rng.next() % 10) / 10     // latency ms, 0.1
                case 3: v = Double(150 + rng.next() % 5) + Double(rng.next() % 10) / 10     // memory MB
                default: v = Double(rng.next() % 10_000) / 100                             // percent
                }
                values.append(v)
            }
            series.append(Series(name: "metric_\(m)_name", kind: m % 5 == 0 ? .counter : .gauge, timestamps: ts, values: values))
        }
        return BatchPayload(series: series)
    }

    static func hex(_ buffer: ByteBuffer) -> String {
        buffer.readableBytesView.map { String(format: "%02x", $0) }.joined()
    }

    static func bytes(hex: String) -> ByteBuffer {
        let clean = hex.filter { $0.isHexDigit }
        var out = ByteBuffer()
        var i = clean.startIndex
        while i < clean.endIndex {
            let j = clean.index(i, offsetBy: 2)
            out.writeInteger(UInt8(clean[i..<j], radix: 16)!)
            i = j
        }
        return out
    }
}
