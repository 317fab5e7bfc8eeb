import ArgumentParser
import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

/// A whole fleet saying hello at once (a restarted hub): hellos let in per second and how long each waited, through
/// the ingest store on a pool the size of the hub's. Twice: a fresh start (no bot held), then every bot again
/// (each hello takes over a lease and its notification closes the older connection).
struct HelloBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hellos", abstract: "Hellos let in per second when a whole fleet connects at once.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Bots, each saying hello once per round.") var bots = 5000
    @Option(help: "Most hellos one statement lets in (1: a statement per hello, as before hellos were grouped).") var group = LeaseTaker.defaultGroup
    @Option(help: "Most hello statements at a time (the hub's default; with --group 1, use the pool's 16).") var concurrent = LeaseTaker.defaultConcurrent
    @Option(help: "Connections in the pool (the hub's database.connections default).") var connections = 16

    func run() async throws {
        let logger = { var l = Logger(label: "bench"); l.logLevel = .warning; return l }()
        let names = (0..<bots).map { String(format: "hello-%05d", $0) }
        let db = try await BenchDatabase.create(server: databaseURL, bots: names, token: "bench-token", logger: logger)
        print("hellos: \(bots) bots at once, \(group) per statement, \(concurrent) statements at a time, pool of \(connections)")
        let client = PostgresClient(configuration: try db.url.clientConfiguration(maxConnections: connections), backgroundLogger: logger)
        try await withRunningClient(client) { client in
            let store = PostgresIngestStore(client: client, logger: logger, hubID: "bench", hellos: (group, concurrent))
            for round in ["fresh start", "every bot again (takeovers)"] {
                let start = ContinuousClock.now
                let waits = try await withThrowingTaskGroup(of: Duration.self) { hellos in
                    for name in names {
                        hellos.addTask {
                            let t0 = ContinuousClock.now
                            let hello = Hello(botID: name, token: "bench-token", agentVersion: "bench", bootEpoch: 1, lastAckedSequence: 0)
                            guard case .accepted = try await store.authenticate(hello, connectionID: UUID(), hub: "bench") else {
                                throw BenchFailure("\(name) was refused")
                            }
                            return ContinuousClock.now - t0
                        }
                    }
                    return try await hellos.reduce(into: [Duration]()) { $0.append($1) }.sorted()
                }
                let seconds = (ContinuousClock.now - start).inSeconds
                print("\(round): \(bots) hellos in \(String(format: "%.2f", seconds)) s")
                report("hellos let in per second (\(round))", Double(bots) / seconds, "hellos/s", digits: 0)
                report("hello wait p50 (\(round))", waits[waits.count / 2].inSeconds * 1000, "ms", digits: 1)
                report("hello wait p99 (\(round))", waits[min(waits.count - 1, waits.count * 99 / 100)].inSeconds * 1000, "ms", digits: 1)
            }
            let held = try await client.query("SELECT count(*) FROM bots WHERE connected_hub = 'bench'", logger: logger)
                .decode(Int64.self).first { _ in true } ?? 0
            guard held == bots else { throw BenchFailure("\(held) of \(bots) bots hold a lease after the hellos") }
        }
    }
}
