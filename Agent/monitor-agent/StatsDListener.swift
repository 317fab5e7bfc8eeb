import FleetwatchAgent
import Logging
import NIOCore
import NIOPosix

/// Accepts the bot's own metrics in StatsD form on a local UDP port: `name:value|c` (counter increment),
/// `name:value|g` (gauge), `name:value|ms` (duration), and `name:text|s` taken as a string state.
/// Several lines per datagram; malformed lines are counted and skipped.
///
/// The trading helper (`TradingMetrics`) takes events with DogStatsD tags:
/// `fleetwatch.trade:PNL|c|#success:true,duration_ms:120`, `fleetwatch.api_call:1|c|#error:false`,
/// `fleetwatch.nonce:1|c|#failed:false`, `fleetwatch.reconnect:1|c`.
enum StatsDLine {
    /// Applies one line to the agent; false if the line is malformed.
    static func apply(_ line: Substring, to agent: MonitorAgent, trading: TradingMetrics? = nil) -> Bool {
        guard let colon = line.firstIndex(of: ":"), let bar = line[colon...].firstIndex(of: "|") else { return false }
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)..<bar]
        var kind = line[line.index(after: bar)...]
        let tags = Self.tags(kind)
        if let at = kind.firstIndex(of: "|") { kind = kind[..<at] }   // sample rate / tags are ignored
        if name.hasPrefix("fleetwatch."), let trading {
            return event(String(name.dropFirst("fleetwatch.".count)), value: value, tags: tags, trading: trading)
        }
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

    static func apply(datagram: String, to agent: MonitorAgent, trading: TradingMetrics? = nil) -> (ok: Int, bad: Int) {
        var ok = 0, bad = 0
        for line in datagram.split(whereSeparator: \.isNewline) where !line.isEmpty {
            if apply(line, to: agent, trading: trading) { ok += 1 } else { bad += 1 }
        }
        return (ok, bad)
    }

    /// `#key:value,key:value` after the type, if any.
    static func tags(_ rest: Substring) -> [String: String] {
        guard let hash = rest.firstIndex(of: "#") else { return [:] }
        var out: [String: String] = [:]
        for pair in rest[rest.index(after: hash)...].split(separator: ",") {
            let kv = pair.split(separator: ":", maxSplits: 1)
            out[String(kv[0])] = kv.count == 2 ? String(kv[1]) : "true"
        }
        return out
    }

    /// A trading-helper event; false if malformed.
    static func event(_ name: String, value: Substring, tags: [String: String], trading: TradingMetrics) -> Bool {
        func flag(_ key: String, default d: Bool) -> Bool? {
            guard let v = tags[key] else { return d }
            switch v.lowercased() { case "true", "1", "yes": return true; case "false", "0", "no": return false; default: return nil }
        }
        switch name {
        case "trade":
            guard let pnl = Double(value), pnl.isFinite, let success = flag("success", default: true) else { return false }
            var duration: Duration?
            if let ms = tags["duration_ms"] {
                guard let v = Double(ms), v.isFinite, v >= 0 else { return false }
                duration = .microseconds(Int64(v * 1000))
            }
            trading.recordTrade(success: success, pnl: pnl, duration: duration)
        case "api_call":
            guard let error = flag("error", default: false) else { return false }
            trading.recordAPICall(error: error)
        case "nonce":
            guard let failed = flag("failed", default: false) else { return false }
            trading.recordNonce(failed: failed)
        case "reconnect":
            trading.recordReconnect()
        default:
            return false
        }
        return true
    }
}

/// The UDP socket behind `StatsDLine`, bound to loopback.
struct StatsDListener {
    let port: Int
    let agent: MonitorAgent
    let trading: TradingMetrics?
    let logger: Logger

    /// Binds and returns the bound port; datagrams are handled until the channel closes.
    func start() async throws -> (Channel, Int) {
        let agent = self.agent, trading = self.trading
        let malformed = agent.counter("statsd_malformed_lines")
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler(agent: agent, trading: trading, malformed: malformed)) }
            }
            .bind(host: "127.0.0.1", port: port).get()
        return (channel, channel.localAddress?.port ?? port)
    }

    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let agent: MonitorAgent
        let trading: TradingMetrics?
        let malformed: CounterHandle
        init(agent: MonitorAgent, trading: TradingMetrics?, malformed: CounterHandle) {
            self.agent = agent
            self.trading = trading
            self.malformed = malformed
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard envelope.data.readableBytes <= 65_507 else { return }
            let (_, bad) = StatsDLine.apply(datagram: String(buffer: envelope.data), to: agent, trading: trading)
            if bad > 0 { malformed.increment(by: Int64(bad)) }
        }
    }
}
