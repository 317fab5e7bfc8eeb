import FleetwatchAgent
import Foundation
import Hummingbird
import Logging

/// The sidecar's local HTTP endpoint (loopback only):
/// - `POST /metrics`: the bot's metrics, as StatsD lines (text) or JSON
///   `{"counters": {"trades_executed": 1}, "gauges": {"daily_pnl": -12.5}, "durations_ms": {...}, "states": {...}}`;
/// - `POST /emergency`: the bot declares an emergency itself, `{"reason": "…", "liquidate": false}`;
/// - `POST /trade` `{"success": true, "pnl": 1.5, "duration_ms": 120}`, `POST /api-call` `{"error": false}`,
///   `POST /nonce` `{"failed": false}`, `POST /reconnect`: the trading helper (`TradingMetrics`), which keeps
///   the reference metrics (`trades_executed`, `success_rate`, `total_pnl`, `daily_pnl`, `api_calls`, …);
/// - `GET /status`: the sidecar's view (hub connection, child, emergency mode).
struct MetricsEndpoint {
    struct JSONMetrics: Decodable {
        var counters: [String: Double]?
        var gauges: [String: Double]?
        var durations_ms: [String: Double]?
        var states: [String: String]?
    }

    struct Declaration: Decodable {
        var reason: String
        var liquidate: Bool?
    }

    struct Status: ResponseEncodable {
        let connected: Bool
        let childPID: Int32?
        let restarts: Int
        let emergencyMode: Bool
        let bufferedSamples: Int
    }

    struct Trade: Decodable {
        var success: Bool?
        var pnl: Double?
        var duration_ms: Double?
    }

    struct Flag: Decodable {
        var error: Bool?
        var failed: Bool?
    }

    let agent: MonitorAgent
    let trading: TradingMetrics
    let child: ChildSupervisor
    /// The local token every request must bear (`LocalGuard`).
    let token: String

    /// Content types for StatsD lines on POST /metrics (not `text/plain`: a browser sends that cross-site).
    static let linesTypes = ["application/x-statsd", "text/x-statsd"]

    func application(port: Int, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: LocalGuard(token: token))
        let agent = self.agent, child = self.child, trading = self.trading
        router.post("/metrics") { request, context -> Response in
            var request = request
            let type = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            guard type == "application/json" || Self.linesTypes.contains(type) else {
                throw HTTPError(.unsupportedMediaType, message: "send JSON as application/json, or StatsD lines as application/x-statsd")
            }
            let body = try await request.collectBody(upTo: 1 << 20)
            let text = String(buffer: body)
            if type == "application/json" {
                guard let m = try? JSONDecoder().decode(JSONMetrics.self, from: Data(text.utf8)) else {
                    throw HTTPError(.badRequest, message: "expected {\"counters\": {…}, \"gauges\": {…}, \"durations_ms\": {…}, \"states\": {…}}")
                }
                var lines: [String] = []
                for (k, v) in m.counters ?? [:] { lines.append("\(k):\(v)|c") }
                for (k, v) in m.gauges ?? [:] { lines.append("\(k):\(v)|g") }
                for (k, v) in m.durations_ms ?? [:] { lines.append("\(k):\(v)|ms") }
                for (k, v) in m.states ?? [:] { lines.append("\(k):\(v)|s") }
                let (_, bad) = StatsDLine.apply(datagram: lines.joined(separator: "\n"), to: agent, trading: trading)
                guard bad == 0 else { throw HTTPError(.badRequest, message: "\(bad) metrics had a bad name or value") }
                return Response(status: .noContent)
            }
            let (_, bad) = StatsDLine.apply(datagram: text, to: agent, trading: trading)
            guard bad == 0 else { throw HTTPError(.badRequest, message: "\(bad) lines were not name:value|c|g|ms|s") }
            return Response(status: .noContent)
        }
        router.post("/emergency") { request, context -> Response in
            // JSON only: a browser cannot send that cross-origin without a preflight, which this endpoint never answers.
            guard request.headers[.contentType]?.hasPrefix("application/json") == true else {
                throw HTTPError(.unsupportedMediaType, message: "send {\"reason\": \"…\"} as application/json")
            }
            let d = try await request.decode(as: Declaration.self, context: context)
            await agent.declareEmergency(reason: d.reason, liquidate: d.liquidate ?? false)
            return Response(status: .accepted)
        }
        /// JSON bodies only (a web page cannot send one cross-origin without a preflight).
        @Sendable func json<T: Decodable>(_ type: T.Type, _ request: Request, _ context: BasicRequestContext, empty: T) async throws -> T {
            var request = request
            let body = try await request.collectBody(upTo: 64 * 1024)
            if body.readableBytes == 0 { return empty }
            guard request.headers[.contentType]?.hasPrefix("application/json") == true else {
                throw HTTPError(.unsupportedMediaType, message: "send JSON as application/json")
            }
            guard let value = try? JSONDecoder().decode(T.self, from: Data(buffer: body)) else {
                throw HTTPError(.badRequest, message: "the body is not the JSON this endpoint takes (see docs/sidecar.md)")
            }
            return value
        }
        router.post("/trade") { request, context -> Response in
            let t = try await json(Trade.self, request, context, empty: Trade())
            guard t.pnl.map(\.isFinite) ?? true, t.duration_ms.map({ $0.isFinite && $0 >= 0 }) ?? true else {
                throw HTTPError(.badRequest, message: "pnl must be a finite number, duration_ms a finite number ≥ 0")
            }
            trading.recordTrade(success: t.success ?? true, pnl: t.pnl ?? 0,
                                duration: t.duration_ms.map { .microseconds(Int64($0 * 1000)) })
            return Response(status: .noContent)
        }
        router.post("/api-call") { request, context -> Response in
            trading.recordAPICall(error: try await json(Flag.self, request, context, empty: Flag()).error ?? false)
            return Response(status: .noContent)
        }
        router.post("/nonce") { request, context -> Response in
            trading.recordNonce(failed: try await json(Flag.self, request, context, empty: Flag()).failed ?? false)
            return Response(status: .noContent)
        }
        router.post("/reconnect") { _, _ -> Response in
            trading.recordReconnect()
            return Response(status: .noContent)
        }
        router.get("/status") { _, _ -> Status in
            let s = await agent.status
            return Status(connected: s.connected, childPID: await child.pid, restarts: await child.restarts,
                          emergencyMode: s.emergencyMode, bufferedSamples: s.bufferedSamples)
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "monitor-agent"),
                           onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
                           logger: logger)
    }
}
