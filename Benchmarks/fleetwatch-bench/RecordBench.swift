import ArgumentParser
import FleetwatchAgent
import Foundation

/// Cost of the agent's record call on an existing handle: nanoseconds per call and allocations.
struct RecordBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "record", abstract: "ns per record call and allocations.")

    @Option(help: "Calls per measurement.") var calls = 20_000_000
    @Option(help: "Repetitions; the best is reported.") var repeats = 5

    func run() throws {
        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:1/agent/v1", botID: "bench", token: "t")
        c.processCollector = false
        c.durationCapacity = 1 << 16
        let agent = try MonitorAgent(configuration: c)
        let counter = agent.counter("trades_executed")
        let gauge = agent.gauge("daily_pnl")
        let duration = agent.duration("trade_execution_time")
        let n = calls

        func measure(_ name: String, calls: Int, allocations: ((Int) -> Void)? = nil, _ body: (Int) -> Void) {
            var best = Double.infinity
            for _ in 0..<repeats {
                let start = ContinuousClock.now
                body(calls)
                let (s, a) = (ContinuousClock.now - start).components
                best = min(best, (Double(s) * 1e9 + Double(a) / 1e9) / Double(calls))
            }
            let allocs = AllocationCounter.count {
                if let allocations { allocations(calls / 10) } else { body(calls / 10) }
            }
            report("\(name) ns/call", best, "ns")
            print("\(name) allocations over \(calls / 10) calls: \(allocs.map(String.init) ?? "n/a (run via scripts/bench to count)")")
        }

        measure("counter.increment", calls: n) { k in for _ in 0..<k { counter.increment() } }
        measure("gauge.set", calls: n) { k in for i in 0..<k { gauge.set(Double(i & 1023)) } }
        // Drain between rounds so the ring never overflows into the cheaper "count and drop" path.
        let ring = 60_000
        // Allocations are counted over record calls only (the drain at flush time allocates by design).
        measure("duration.record", calls: ring, allocations: { k in
            for i in 0..<k { duration.record(milliseconds: Double(i & 255)) }
        }) { k in
            for i in 0..<k { duration.record(milliseconds: Double(i & 255)) }
            _ = duration.drainForBenchmark()
        }
        _ = counter.value
    }
}
