import AsyncHTTPClient
import ArgumentParser
import FleetwatchProtocol
import Foundation

/// `fleetwatch-bench`: the figures in docs/benchmarks.md. Build with `-c release`; `scripts/bench` runs them all.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleetwatch-bench",
        abstract: "Benchmarks for fleetwatch's hot paths (run release builds).",
        version: FleetwatchVersion.current,
        subcommands: [RecordBench.self, APIProbe.self, WireBench.self, IngestBench.self, DiskBench.self, MemoryBench.self, MemoryChild.self, StopLatencyBench.self, ReviewBench.self, UpkeepBench.self, FleetAPIBench.self, LoadBench.self, LiveLatencyBench.self,
                      AlertLatencyBench.self, IsolationBench.self, HelloBench.self])
}

/// Prints a result line in a stable `name: value unit` form for docs/benchmarks.md.
func report(_ name: String, _ value: Double, _ unit: String, digits: Int = 2) {
    print("\(name): \(String(format: "%.\(digits)f", value)) \(unit)")
}

/// The hub's Prometheus exposition (`GET /metrics` on loopback, no token: the hub's default).
func hubMetricsText(port: Int) async throws -> String {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(10))
    return String(buffer: try await response.body.collect(upTo: 8 << 20))
}

/// A progress line of a long benchmark, on standard error (standard output keeps only the figures).
func progress(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// A benchmark that cannot give a true figure stops with this (exit status 1), saying what it got instead.
struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
