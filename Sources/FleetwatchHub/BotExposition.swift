import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `GET /metrics/bots`: every bot's newest values in Prometheus's text format, so Prometheus can scrape (or
/// federate) the fleet. Any replica answers for every bot, so one scrape target is enough.
///
/// Per bot metric NAME (characters other than letters, digits and `_` become `_`):
/// - gauge: `fleetwatch_bot_NAME{bot}`, in base units (`memory_usage_mb` → `fleetwatch_bot_memory_usage_bytes`,
///   `…_ms` → `…_seconds`);
/// - counter: `fleetwatch_bot_NAME_total{bot}`, the running total since the bot's agent started (it restarts at 0
///   with the agent, which Prometheus's `rate()` and `increase()` handle);
/// - duration: `fleetwatch_bot_NAME_seconds{bot}`, the newest observed duration in seconds (agents send ms);
/// - state: `fleetwatch_bot_NAME_state{bot,state}` 1 for the current state.
///
/// Per bot: `fleetwatch_bot_up` (1 when an agent is connected to some replica), `fleetwatch_bot_last_seen_timestamp_seconds`,
/// `fleetwatch_bot_emergency` (1 while emergency mode is latched) and `fleetwatch_bot_alerts_firing{level}`.
struct BotExposition: Sendable {
    let client: any PostgresQuerying
    let fleet: FleetView
    let snapshot: @Sendable () async throws -> [MetricsRoutes.Snapshot]
    let logger: Logger

    func register(on router: Router<HubRequestContext>) {
        router.get("/metrics/bots") { _, _ -> Response in
            let text = try await render()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }

    func render() async throws -> String {
        let kinds = try await BotRegistry(client: client, logger: logger).metricKinds()
        let rows = try await fleet.rows(bot: nil)
        let values = try await snapshot()
        var text = Text()
        for r in rows {
            text.add("fleetwatch_bot_up", "gauge", "1 when the bot's agent is connected to a hub replica", bot: r.name, value: r.connected ? 1 : 0)
            if let last = r.last {
                text.add("fleetwatch_bot_last_seen_timestamp_seconds", "gauge", "When the bot's agent last connected or had a batch stored (Unix seconds, to within a second)",
                         bot: r.name, value: last.timeIntervalSince1970)
            }
            text.add("fleetwatch_bot_emergency", "gauge", "1 while the bot's emergency mode is latched", bot: r.name,
                     value: r.emergencySince == nil ? 0 : 1)
            for (level, count) in [("CRITICAL", r.alerts.critical), ("WARNING", r.alerts.warning), ("INFO", r.alerts.info)] {
                text.add("fleetwatch_bot_alerts_firing", "gauge", "Alerts firing for the bot, by level", bot: r.name,
                         extra: [("level", level)], value: Double(count))
            }
        }
        for s in values {
            for (metric, value) in s.metrics.sorted(by: { $0.key < $1.key }) {
                let base = "fleetwatch_bot_" + Self.sanitized(metric)
                switch kinds[metric] ?? "gauge" {
                case "counter":
                    let name = base.hasSuffix("_total") ? base : base + "_total"
                    text.add(name, "counter", "The bot's counter \(metric): its running total since its agent started", bot: s.bot, value: value)
                case "duration":
                    text.add(base + "_seconds", "gauge", "The bot's newest observed \(metric), in seconds", bot: s.bot, value: value / 1000)
                case "state":
                    continue
                default:
                    let (name, factor) = Self.baseUnits(base)
                    text.add(name, "gauge", "The bot's gauge \(metric)\(factor == 1 ? "" : " in base units")", bot: s.bot, value: value * factor)
                }
            }
            for (metric, state) in s.states.sorted(by: { $0.key < $1.key }) {
                text.add("fleetwatch_bot_" + Self.sanitized(metric) + "_state", "gauge", "The bot's state \(metric): 1 for the current state",
                         bot: s.bot, extra: [("state", state)], value: 1)
            }
        }
        return text.rendered
    }

    /// Prometheus wants base units: a gauge named `…_mb`/`_kb` becomes `…_bytes` (MiB/KiB), `…_ms` becomes
    /// `…_seconds`; the factor converts the value.
    static func baseUnits(_ name: String) -> (String, Double) {
        for (suffix, unit, factor) in [("_mb", "_bytes", 1_048_576.0), ("_kb", "_bytes", 1024), ("_ms", "_seconds", 0.001)] where name.hasSuffix(suffix) {
            return (String(name.dropLast(suffix.count)) + unit, factor)
        }
        return (name, 1)
    }

    /// A Prometheus metric name part: letters, digits and `_` (a bot metric may also hold `. : - /`).
    static func sanitized(_ name: String) -> String {
        String(String.UnicodeScalarView(name.unicodeScalars.map { s in
            (s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "_")) ? s : "_"
        }))
    }

    /// Families in first-seen order, each with one HELP and TYPE line and its samples together; a sample whose
    /// name and labels repeat (two bot metrics that sanitise alike) is dropped, as Prometheus would refuse it.
    struct Text {
        private var order: [String] = []
        private var families: [String: (type: String, help: String, lines: [String])] = [:]
        private var seen: Set<String> = []

        mutating func add(_ name: String, _ type: String, _ help: String, bot: String, extra: [(String, String)] = [], value: Double) {
            let labels = ([("bot", bot)] + extra).map { "\($0.0)=\"\(Self.escaped($0.1))\"" }.joined(separator: ",")
            let series = "\(name){\(labels)}"
            guard seen.insert(series).inserted else { return }
            if families[name] == nil {
                order.append(name)
                families[name] = (type, help, [])
            }
            families[name]!.lines.append("\(series) \(Self.number(value))")
        }

        var rendered: String {
            var out = ""
            for name in order {
                let f = families[name]!
                out += "# HELP \(name) \(f.help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n"))\n"
                out += "# TYPE \(name) \(f.type)\n"
                for line in f.lines { out += line + "\n" }
            }
            return out
        }

        static func escaped(_ v: String) -> String {
            v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }

        static func number(_ v: Double) -> String {
            if v.isNaN { return "NaN" }
            if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
            return v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : "\(v)"
        }
    }
}
