import FleetwatchTestSupport
import Foundation
import Testing

/// Every benchmark of `scripts/bench` once, at a tiny size, so a change that breaks one fails here instead of
/// being found weeks later (the figures come from `scripts/bench` on release builds, not from this run). Each must
/// end with status 0 and print its result lines; a benchmark that meets anything unexpected exits 1 saying what.
/// `scripts/test` runs this suite on its own, after the others, so its load does not disturb them.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"),
       .enabled(if: ProcessInfo.processInfo.environment["FLEETWATCH_BENCH_SMOKE"] != "later",
                "scripts/test runs it on its own after the rest"))
struct BenchmarkSmokeTests {
    static var artifacts: String { ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory() }

    /// `hubOther`: a monitor-hub at another path, for `ingest --hub-binary` (an A/B against another build).
    static func cases(_ db: String, hubOther: String) -> [(name: String, args: [String], expect: String)] {
        [
            ("record", ["record", "--calls", "20000", "--repeats", "1"], "ns/call"),
            ("wire", ["wire"], "wire bytes/sample"),
            // The test's PostgreSQL runs on this machine, so the benchmark reads the server's CPU too.
            ("ingest", ["ingest", "--database-url", db, "--agents", "2", "--ticks", "2", "--metrics", "5", "--seconds", "2"],
             "PostgreSQL CPU per million samples (the whole server)"),
            ("ingest-protocol-2", ["ingest", "--database-url", db, "--agents", "2", "--ticks", "1", "--metrics", "5", "--seconds", "2",
                                   "--protocol", "2", "--no-copy", "--hub-binary", hubOther, "--toast-compression", "pglz"],
             "hub \(hubOther), toast compression pglz"),
            ("ingest-vs-prometheus", ["ingest", "--database-url", db, "--agents", "2", "--ticks", "1", "--metrics", "5", "--seconds", "2",
                                      "--compare-prometheus", "/usr/bin/prometheus", "--no-copy"], "fleetwatch ÷ Prometheus"),
            ("disk", ["disk", "--database-url", db, "--bots", "2", "--minutes", "2", "--metrics", "5"], "disk bytes/sample after re-chunking"),
            ("memory", ["memory", "--database-url", db, "--seconds", "3", "--metrics", "5"], "agent CPU per million samples sent"),
            ("alert-latency", ["alert-latency", "--database-url", db, "--transitions", "4"], "batch arrival → webhook received p50"),
            ("stop-latency", ["stop-latency", "--database-url", db, "--stops", "3"], "request → handler invoked, other replica, p50"),
            ("upkeep", ["upkeep", "--database-url", db, "--bots", "2", "--metrics", "5", "--minutes", "12", "--runs", "1"],
             "regular pass rollup, before ÷ after"),
            ("review", ["review", "--database-url", db, "--bots", "2", "--days", "1", "--sample-seconds", "600", "--runs", "2"], "weekly summary (report weekly), p50"),
            ("fleet-api", ["fleet-api", "--database-url", db, "--bots", "10", "--requests", "5"], "p99"),
            ("live-latency", ["live-latency", "--database-url", db, "--values", "5"], "p50"),
            ("load", ["load", "--database-url", db, "--agents", "5", "--seconds", "5", "--warmup", "1", "--hub-log-level", "info"],
             "hub CPU from the warm-up to the end of the load"),   // exit status 0 already says 0 lost, 0 duplicated
            ("isolation", ["isolation", "--database-url", db, "--batches", "20", "--stops", "3"], "stop p99 under attack / idle"),
            ("hellos", ["hellos", "--database-url", db, "--bots", "20"], "hellos let in per second (every bot again (takeovers))"),
        ]
    }

    @Test(.timeLimit(.minutes(12)))
    func everyBenchmarkRunsAtATinySize() async throws {
        let db = try #require(TestDatabase.serverURL).urlString
        let malloc = builtExecutable("libfleetwatch_malloc_count.so")
        let hubOther = "\(Self.artifacts)/bench-smoke-other-build-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: hubOther, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(hubOther)/monitor-hub-b", withDestinationPath: builtExecutable("monitor-hub"))
        for c in Self.cases(db, hubOther: "\(hubOther)/monitor-hub-b") {
            let log = "\(Self.artifacts)/bench-smoke-\(c.name)-\(UUID().uuidString.prefix(8)).log"
            let started = ContinuousClock.now
            let bench = try ChildProcess(builtExecutable("fleetwatch-bench"), c.args, logPath: log,
                                         environment: c.name == "record" ? ["LD_PRELOAD": malloc] : [:])
            let status = await bench.stop(signal: 0, timeout: .seconds(180))
            let output = bench.log
            #expect(status == 0, "\(c.name) exited \(status) after \(ContinuousClock.now - started):\n\(output.suffix(3000))")
            #expect(output.contains(c.expect), "\(c.name) printed no '\(c.expect)':\n\(output.suffix(3000))")
            if c.name == "load" { Self.expectHubLogAtInfo(output) }
        }
    }

    /// `load --hub-log-level info` reaches the hub: its log (the path the benchmark prints) has info lines.
    static func expectHubLogAtInfo(_ output: String) {
        let marker = "hub log (level info): "
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix(marker) }) else {
            Issue.record("load printed no '\(marker)'")
            return
        }
        let log = (try? String(contentsOfFile: String(line.dropFirst(marker.count)), encoding: .utf8)) ?? ""
        #expect(log.contains(" info fleetwatch.hub:"), "the hub's log has no info line:\n\(log.prefix(2000))")
    }
}
