import FleetwatchAlerting
import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO
import Prometheus
import Synchronization

/// The hub's own figures in Prometheus exposition format (`GET /metrics`), through swift-prometheus.
/// Per replica: connected agents, batches and samples, ingest errors by close code, database latency,
/// notification attempts by channel and outcome. Fleet-wide, read from PostgreSQL through partial indexes (no
/// table scan) at most every `databaseRefresh`: firing alerts by level, open commands by state, bots in
/// emergency mode. `/metrics` needs no credentials, so a scraper hammering it costs the database nothing more.
final class HubMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let cpuSeconds = Mutex(0.0)
    private let batches, samples, refused, overLimit, duplicates, deferred: Counter
    private let agents, pingSeconds: Gauge
    private let storeDuration, pingDuration: DurationHistogram
    private let last = Mutex(IngestCounters.Snapshot())
    /// When the fleet-wide figures were last read from PostgreSQL.
    private let refreshed = Mutex<ContinuousClock.Instant?>(nil)
    static let databaseRefresh: Duration = .seconds(5)
    private let latencyBuckets: [Duration] = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                              .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                              .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)]

    init() {
        batches = registry.makeCounter(descriptor: .named("fleetwatch_batches_stored_total", "Batches stored by this replica"))
        samples = registry.makeCounter(descriptor: .named("fleetwatch_samples_stored_total", "Samples stored by this replica"))
        refused = registry.makeCounter(descriptor: .named("fleetwatch_samples_refused_total", "Samples refused (non-finite value, timestamp outside the accepted window, or metric name over the limit)"))
        overLimit = registry.makeCounter(descriptor: .named("fleetwatch_samples_over_name_limit_total", "Samples refused because their metric name was over the bot's or the fleet's name limit"))
        duplicates = registry.makeCounter(descriptor: .named("fleetwatch_duplicate_batches_total", "Batches received again and acknowledged without storing"))
        deferred = registry.makeCounter(descriptor: .named("fleetwatch_deferred_batches_total", "Batches received while PostgreSQL was unreachable: evaluated for alerts, not acknowledged, sent again later"))
        agents = registry.makeGauge(descriptor: .named("fleetwatch_agents_connected", "Agent connections held by this replica"))
        storeDuration = registry.makeDurationHistogram(descriptor: .named("fleetwatch_batch_store_duration_seconds", "Time to store one batch in PostgreSQL, or one run of batches that waited on a connection together"), labels: [], buckets: latencyBuckets)
        pingDuration = registry.makeDurationHistogram(descriptor: .named("fleetwatch_postgres_ping_duration_seconds", "Round trip of SELECT 1 at each scrape"), labels: [], buckets: latencyBuckets)
        pingSeconds = registry.makeGauge(descriptor: .named("fleetwatch_postgres_up", "1 if PostgreSQL answered the last scrape's ping"))
    }

    func batchStored(in duration: Duration) { storeDuration.record(duration) }

    func notificationAttempt(channel: String, outcome: String) {
        registry.makeCounter(descriptor: .named("fleetwatch_notifications_total", "Alert notification attempts by channel and outcome"), labels: [("channel", channel), ("outcome", outcome)]).increment()
    }

    /// Refreshes the scrape-time figures and renders everything.
    func render(counters: IngestCounters, connections: LiveConnections, backlog: IngestBacklog, client: any PostgresQuerying,
                engine: AlertEngine? = nil, logger: Logger) async -> String {
        if let engine {
            registry.makeGauge(descriptor: .named("fleetwatch_alert_evaluation_backlog",
                                                  "Stored batches waiting for alert evaluation on this replica (growing: evaluation does not keep up)"))
                .set(to: Double(backlog.unevaluated))   // the count the agent connections' readers wait on
        }
        registry.makeGauge(descriptor: .named("fleetwatch_build_info", "The hub's version (value 1)"),
                           labels: [("version", FleetwatchVersion.current)]).set(to: 1)
        if let p = HubObservability.ProcessFigures.read() {
            registry.makeGauge(descriptor: .named("process_resident_memory_bytes", "Resident memory of the hub process")).set(to: p.residentBytes)
            registry.makeGauge(descriptor: .named("process_open_fds", "Open file descriptors of the hub process")).set(to: p.openFiles)
            registry.makeGauge(descriptor: .named("process_start_time_seconds", "Start of the hub process, Unix seconds")).set(to: p.startTime)
            let delta = cpuSeconds.withLock { last -> Double in defer { last = max(last, p.cpuSeconds) }; return max(0, p.cpuSeconds - last) }
            registry.makeCounter(descriptor: .named("process_cpu_seconds_total", "User and system CPU time of the hub process")).increment(by: delta)
        }
        if let arenas = MallocArenas.recentCount() {
            registry.makeGauge(descriptor: .named("fleetwatch_allocator_arenas", "Arenas of the hub's memory allocator (glibc; 2 unless MALLOC_ARENA_MAX is set)"))
                .set(to: Double(arenas))
        }
        if let heap = AllocatorHeap.recent() {
            registry.makeGauge(descriptor: .named("fleetwatch_allocator_in_use_bytes", "Bytes the hub's allocations hold (glibc mallinfo2: in the arenas and mapped on their own), read at most every 5 s"))
                .set(to: Double(heap.inUse))
            registry.makeGauge(descriptor: .named("fleetwatch_allocator_free_bytes", "Bytes free inside the allocator's arenas, resident or not; pages given back by a trim still count (glibc mallinfo2), read at most every 5 s"))
                .set(to: Double(heap.freeInArenas))
        }
        agents.set(to: Double(await connections.count))
        let waiting = backlog.figures
        registry.makeGauge(descriptor: .named("fleetwatch_ingest_backlog_bytes", "Received agent messages waiting to be handled, over all connections of this replica")).set(to: Double(waiting.bytes))
        registry.makeGauge(descriptor: .named("fleetwatch_ingest_backlog_peak_bytes", "The most received bytes that waited at once since the replica started (limit: hub.max_pending_bytes_total)")).set(to: Double(waiting.peak))
        registry.makeGauge(descriptor: .named("fleetwatch_ingest_readers_paused", "Agent connections not read now because the hub-wide backlog is over hub.max_pending_bytes_total or hub.max_unevaluated_batches")).set(to: Double(waiting.parked))
        let now = counters.snapshot
        let before = last.withLock { old in defer { old = now }; return old }
        batches.increment(by: now.batchesStored - before.batchesStored)
        samples.increment(by: now.samplesStored - before.samplesStored)
        refused.increment(by: now.samplesRefused - before.samplesRefused)
        overLimit.increment(by: now.samplesOverNameLimit - before.samplesOverNameLimit)
        duplicates.increment(by: now.duplicates - before.duplicates)
        deferred.increment(by: now.deferred - before.deferred)
        for (code, count) in now.closes {
            let delta = count - before.closes[code, default: 0]
            guard delta > 0 else { continue }
            registry.makeCounter(descriptor: .named("fleetwatch_ingest_errors_total", "Agent connections closed by the hub, by close code"),
                                 labels: [("code", String(code)), ("reason", Self.reason(code))]).increment(by: delta)
        }
        let due = refreshed.withLock { last -> Bool in
            let now = ContinuousClock.now
            guard last.map({ now - $0 >= Self.databaseRefresh }) ?? true else { return false }
            last = now
            return true
        }
        if due { await refreshFromDatabase(client: client, logger: logger) }
        return registry.emitToString()
    }

    private func refreshFromDatabase(client: any PostgresQuerying, logger: Logger) async {
        let started = ContinuousClock.now
        do {
            try await ServerFacts(client: client, logger: logger).ping()
            pingDuration.record(ContinuousClock.now - started)
            pingSeconds.set(to: 1)
            let figures = try await FleetFigures.read(client: client, logger: logger)
            for (level, n) in figures.firingAlerts {
                registry.makeGauge(descriptor: .named("fleetwatch_alerts_firing", "Alerts firing now, fleet-wide"), labels: [("level", level)]).set(to: Double(n))
            }
            for (state, n) in figures.openCommands {
                registry.makeGauge(descriptor: .named("fleetwatch_commands", "Emergency commands not yet finished, by state, fleet-wide"), labels: [("state", state)]).set(to: Double(n))
            }
            registry.makeGauge(descriptor: .named("fleetwatch_bots_in_emergency", "Bots latched in emergency mode")).set(to: Double(figures.botsInEmergency))
        } catch {
            pingSeconds.set(to: 0)
            logger.warning("metrics: PostgreSQL did not answer: \(String(reflecting: error))")
        }
    }

    static func reason(_ code: UInt16) -> String {
        switch CloseCode(rawValue: code) {
        case .protocolError: return "protocol_error"
        case .unsupportedVersion: return "unsupported_version"
        case .authenticationFailed: return "authentication_failed"
        case .frameTooLarge: return "frame_too_large"
        case .payloadTooLarge: return "payload_too_large"
        case .badBatch: return "bad_batch"
        case .helloExpected: return "hello_expected"
        case .replaced: return "replaced"
        case .heartbeatTimeout: return "heartbeat_timeout"
        case .storageUnavailable: return "storage_unavailable"
        default: return "other"
        }
    }
}

extension MetricNameDescriptor {
    /// A metric named in full (`fleetwatch_batches_stored_total`) with its help text.
    static func named(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
