import ArgumentParser
import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Logging

/// The fault suite: each scenario starts what it needs (hubs, agents, PostgreSQL clusters, a fault proxy)
/// on loopback, injects its fault, counts every batch and command, stops everything, and reports figures
/// and violated invariants. Exit status 1 if any invariant failed. `scripts/faults` runs it.
@main
struct FaultSuite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleetwatch-faults",
        abstract: "Fault scenarios against real hubs, agents and PostgreSQL, counting every batch.",
        version: FleetwatchVersion.current)

    static let all = ["hub-kill", "ack-lost", "agent-kill", "hub-unreachable", "postgres-restart", "replicas-postgres-restart",
                      "stop-twice", "stop-during-outage", "primary-failover", "rechunk-kill"]

    @Option(help: "PostgreSQL server URL; every scenario creates fresh databases on it.") var databaseURL: String
    @Option(help: "Directory of monitor-hub and fleetwatch-simbot (default: next to this program).") var binDir: String?
    @Option(help: "Where logs and spools go.") var logDir = NSTemporaryDirectory() + "fleetwatch-faults"
    @Option(help: "scripts/pg-private, for the scenarios that stop PostgreSQL.") var pgPrivate = "scripts/pg-private"
    @Flag(help: "The long version: 10 hub kills, 60 s outages, 30 s database outages (the short one is for CI).") var full = false
    @Argument(help: "Scenarios to run (default: all): \(all.joined(separator: ", ")).") var scenarios: [String] = []

    func run() async throws {
        let chosen = scenarios.isEmpty ? Self.all : scenarios
        if let unknown = chosen.first(where: { !Self.all.contains($0) }) {
            throw ValidationError("unknown scenario \(unknown); known: \(Self.all.joined(separator: ", "))")
        }
        try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
        var logger = Logger(label: "faults")
        logger.logLevel = .error
        let bin = binDir ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let h = Harness(server: try DatabaseURL(databaseURL), binDir: bin, logDir: logDir, logger: logger)
        FileHandle.standardOutput.write(Data("fleetwatch fault suite (\(full ? "full" : "short")): \(chosen.joined(separator: ", ")); logs in \(logDir)\n".utf8))
        var failed: [String] = []
        for name in chosen {
            let started = ContinuousClock.now
            var report: Report
            do {
                switch name {
                case "hub-kill": report = try await HubKillScenario(h: h, full: full).run()
                case "ack-lost": report = try await AckLostScenario(h: h, full: full).run()
                case "agent-kill": report = try await AgentKillScenario(h: h, full: full).run()
                case "hub-unreachable": report = try await UnreachableScenario(h: h, full: full).run()
                case "postgres-restart": report = try await PostgresRestartScenario(h: h, full: full, pgScript: pgPrivate).run()
                case "replicas-postgres-restart": report = try await ReplicasRestartScenario(h: h, full: full, pgScript: pgPrivate).run()
                case "primary-failover": report = try await PrimaryFailoverScenario(h: h, full: full, pgScript: pgPrivate).run()
                case "stop-during-outage": report = try await StopDuringOutageScenario(h: h, full: full, pgScript: pgPrivate).run()
                case "rechunk-kill": report = try await RechunkKillScenario(h: h, full: full).run()
                default: report = try await StopTwiceScenario(h: h, full: full).run()
                }
            } catch {
                report = Report(scenario: name, failures: ["the scenario could not run: \(error)"])
            }
            report.figure("time", String(format: "%.0f s", (ContinuousClock.now - started).inSeconds))
            FileHandle.standardOutput.write(Data(report.render().utf8))
            if !report.ok { failed.append(name) }
        }
        print(failed.isEmpty ? "all \(chosen.count) scenarios held" : "FAILED: \(failed.joined(separator: ", "))")
        if !failed.isEmpty { throw ExitCode(1) }
    }
}
