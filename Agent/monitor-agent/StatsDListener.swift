import FleetwatchAgent
import Logging
import NIOCore
import NIOPosix

/// Accepts the bot's own metrics in StatsD form on a local UDP port: `name:value|c` (counter increment),
/// `name:value|g` (gauge), `name:value|ms` (duration), and `name:text|s` taken as a string state.
/// Several lines per datagram; malformed lines are counted and skipped.
enum StatsDLine {
    /// Applies one line to the agent; false if the line is malformed.
    static func apply(_ line: Substring, to agent: MonitorAgent) -> Bool {
        guard let colon = line.firstIndex(of: ":"), let bar = line[colon...].firstIndex(of: "|") else { return false }
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)..<bar]
        var kind = line[line.index(after: bar)...]
        if let at = kind.firstIndex(of: "|") { kind = kind[..<at] }   // sample rate / tags are ignored
        guard !name.isEmpty, name.utf8.count <= 128, name.allSatisfy({ $0.isLetter || $0.isNumber || "_.:-/".contains($0) }) else { return false }
        switch kind {
        case "s":
            agent.state(name).set(String(value))
            return true
        case "c":
            guard let v = Double(value), v.isFinite, v >= 0, v < 9.0e18 else { return false }
            agent.counter(name).increment(by: Int64(v.rounded()))
        case "g":
            guard let v = Double(value), v.isFinite else { return false }
            agent.gauge(name).set(v)
        case "ms", "h":
            guard let v = Double(value), v.isFinite, v >= 0 else { return false }
            agent.duration(name).record(milliseconds: v)
        default:
            return false
        }
        return true
    }

    static func apply(datagram: String, to agent: MonitorAgent) -> (ok: Int, bad: Int) {
        var ok = 0, bad = 0
        for line in datagram.split(whereSeparator: \.isNewline) where !line.isEmpty {
            if apply(line, to: agent) { ok += 1 } else { bad += 1 }
        }
        return (ok, bad)
    }
}

/// The UDP socket behind `StatsDLine`, bound to loopback.
struct StatsDListener {
    let port: Int
    let agent: MonitorAgent
    let logger: Logger

    /// Binds and returns the bound port; datagrams are handled until the channel closes.
    func start() async throws -> (Channel, Int) {
        let agent = self.agent
        let malformed = agent.counter("statsd_malformed_lines")
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler(agent: agent, malformed: malformed)) }
            }
            .bind(host: "127.0.0.1", port: port).get()
        return (channel, channel.localAddress?.port ?? port)
    }

    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let agent: MonitorAgent
        let malformed: CounterHandle
        init(agent: MonitorAgent, malformed: CounterHandle) {
            self.agent = agent
            self.malformed = malformed
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard envelope.data.readableBytes <= 65_507 else { return }
            let (_, bad) = StatsDLine.apply(datagram: String(buffer: envelope.data), to: agent)
            if bad > 0 { malformed.increment(by: Int64(bad)) }
        }
    }
}
