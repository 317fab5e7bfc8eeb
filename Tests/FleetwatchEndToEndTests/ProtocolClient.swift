import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import NIOCore

/// A bot that speaks the agent protocol by hand over `RawWebSocket`, to send what no well-behaved agent would:
/// other bots' command ids, declarations with every bit set, floods it never reads the answers to.
final class ProtocolClient: @unchecked Sendable {
    enum Incoming: Sendable {
        case frame(Frame)
        case closed(RawWebSocket.CloseOutcome)
    }

    let ws: RawWebSocket
    let welcome: Welcome
    let epoch: UInt64
    private var sequence: UInt64 = 0
    /// How the connection ended, once `ack(of:until:others:)` saw it end (for a test's failure message).
    private(set) var ended: RawWebSocket.CloseOutcome?

    private init(ws: RawWebSocket, welcome: Welcome, epoch: UInt64) {
        self.ws = ws
        self.welcome = welcome
        self.epoch = epoch
    }

    /// Connects as `bot` and waits for the welcome; throws with the close the hub answered instead.
    static func connect(port: Int, bot: String, token: String, version: UInt16 = WireProtocol.version,
                        epoch: UInt64 = UInt64(Date().timeIntervalSince1970 * 1_000_000),
                        receiveBufferBytes: Int32? = nil) async throws -> ProtocolClient {
        let ws = try await RawWebSocket.open(port: port, path: WireProtocol.agentPath, receiveBufferBytes: receiveBufferBytes)
        let hello = Frame.hello(Hello(protocolVersion: version, botID: bot, token: token, agentVersion: "hostile/1",
                                      bootEpoch: epoch, lastAckedSequence: 0))
        guard await ws.send(opcode: 0x2, fin: true, payload: Array(hello.encoded().readableBytesView)) else {
            throw TestSupportError("hello not sent")
        }
        let deadline = ContinuousClock.now + .seconds(15)
        while true {
            switch await ws.nextFrame(until: deadline) {
            case .frame(let f) where f.opcode == 0x2:
                if case .welcome(let w)? = try? Frame.decode(ByteBuffer(bytes: f.payload)) {
                    return ProtocolClient(ws: ws, welcome: w, epoch: epoch)
                }
            case .frame(let f) where f.opcode == 0x8:
                ws.socket.disconnect()
                throw ConnectRefused(code: f.payload.count >= 2 ? UInt16(f.payload[0]) << 8 | UInt16(f.payload[1]) : nil)
            case .frame:
                continue
            case .ended(let outcome):
                ws.socket.disconnect()
                throw TestSupportError("no welcome for \(bot): \(outcome)")
            }
        }
    }

    struct ConnectRefused: Error, Equatable {
        let code: UInt16?
    }

    /// Sends one frame as one binary message.
    @discardableResult
    func send(_ frame: Frame, timeout: Duration = .seconds(10)) async -> Bool {
        await ws.send(opcode: 0x2, fin: true, payload: Array(frame.encoded().readableBytesView), timeout: timeout)
    }

    /// The next batch of this connection's epoch with `payload`; returns its sequence. `timeout`: how long the
    /// hub may take to read it.
    func sendBatch(_ payload: BatchPayload, timeout: Duration = .seconds(10)) async throws -> UInt64 {
        sequence += 1
        let frame = try BatchFrame.make(bootEpoch: epoch, sequence: sequence, payload: payload)
        guard await send(.batch(frame), timeout: timeout) else { throw TestSupportError("batch \(sequence) not sent") }
        return sequence
    }

    /// The next protocol frame from the hub (WebSocket pings are answered), or how the connection ended.
    func next(until deadline: ContinuousClock.Instant) async -> Incoming {
        while true {
            switch await ws.nextFrame(until: deadline) {
            case .frame(let f) where f.opcode == 0x2:
                guard let frame = try? Frame.decode(ByteBuffer(bytes: f.payload)) else { continue }
                return .frame(frame)
            case .frame(let f) where f.opcode == 0x9:
                _ = await ws.send(opcode: 0xA, fin: true, payload: f.payload)
            case .frame(let f) where f.opcode == 0x8:
                return .closed(.closeFrame(f.payload.count >= 2 ? UInt16(f.payload[0]) << 8 | UInt16(f.payload[1]) : nil))
            case .frame:
                continue
            case .ended(let outcome):
                return .closed(outcome)
            }
        }
    }

    /// Reads until the ack of `sequence` or of a later batch, acks being cumulative (other frames are collected);
    /// nil if the connection ended first.
    func ack(of sequence: UInt64, until deadline: ContinuousClock.Instant, others: inout [Frame]) async -> Ack? {
        while true {
            switch await next(until: deadline) {
            case .frame(.ack(let a)) where a.sequence >= sequence: return a
            case .frame(.heartbeat(let h)):
                // As an agent does: a heartbeat back, so a slow store does not make this connection look silent.
                others.append(.heartbeat(h))
                _ = await send(.heartbeat(Heartbeat(sentAtMs: UInt64(Date().timeIntervalSince1970 * 1000))))
            case .frame(let f): others.append(f)
            case .closed(let outcome):
                ended = outcome
                return nil
            }
        }
    }

    func close() { ws.socket.disconnect() }

    /// A payload of `count` gauges named `prefix0`, `prefix1`, … with one sample each.
    static func names(_ prefix: String, _ range: Range<Int>, nowMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> BatchPayload {
        BatchPayload(series: range.map { Series(name: "\(prefix)\($0)", kind: .gauge, timestamps: [nowMs], values: [Double($0)]) })
    }
}
