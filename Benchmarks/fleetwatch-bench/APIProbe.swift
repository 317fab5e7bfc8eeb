import ArgumentParser
import AsyncHTTPClient
import FleetwatchTestSupport
import Foundation
import NIOCore

/// The dashboard's view of a loaded hub, from a process of its own: `GET /api/bots` and `/api/status` once a
/// `--interval` (1 s), each timed from the request to the last byte of the answer, 10 s at most. The load benchmark
/// starts it beside its agents: an operator's browser is not queued behind thousands of agents in one
/// process, so neither is the probe.
struct APIProbe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "api-probe", shouldDisplay: false)
    @Option(help: "The hub's base URL.") var hub = ""
    @Option(help: "API token (viewer).") var token = ""
    @Option(help: "Seconds to run.") var seconds = 60.0
    @Option(help: "Seconds between rounds (one request to each endpoint).") var interval = 1.0
    @Option(help: "File the result (JSON) is written to as the probe ends.") var out = ""

    struct Result: Codable {
        var bots: [Double] = []
        var status: [Double] = []
        /// Requests without a 200 answer within 10 s: what happened to each.
        var errors: [String] = []
    }

    func run() async throws {
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        var result = Result()
        while ContinuousClock.now < end {
            for path in ["/api/bots", "/api/status"] {
                var request = HTTPClientRequest(url: hub + path)
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                let t0 = ContinuousClock.now
                do {
                    let response = try await HTTPClient.shared.execute(request, deadline: .now() + .seconds(10))
                    _ = try await response.body.collect(upTo: 64 << 20)
                    let ms = (ContinuousClock.now - t0).inSeconds * 1000
                    if response.status != .ok {
                        result.errors.append("\(path): \(response.status.code) after \(Int(ms)) ms")
                    } else if path == "/api/bots" {
                        result.bots.append(ms)
                    } else {
                        result.status.append(ms)
                    }
                } catch {
                    let ms = (ContinuousClock.now - t0).inSeconds * 1000
                    result.errors.append("\(path): \(String(describing: error).prefix(80)) after \(Int(ms)) ms")
                }
            }
            try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
        }
        try JSONEncoder().encode(result).write(to: URL(fileURLWithPath: out))
    }

    /// Starts the probe as a child process of this benchmark binary; `result()` waits for it to end.
    struct Child {
        let process: ChildProcess
        let out: String

        init(hub: String, token: String, seconds: Double, interval: Double) throws {
            out = NSTemporaryDirectory() + "fleetwatch-api-probe-\(getpid()).json"
            try? FileManager.default.removeItem(atPath: out)
            process = try ChildProcess(CommandLine.arguments[0],
                                       ["api-probe", "--hub", hub, "--token", token, "--seconds", "\(seconds)", "--interval", "\(interval)", "--out", out],
                                       logPath: NSTemporaryDirectory() + "fleetwatch-api-probe.log")
        }

        func result() async throws -> Result {
            while process.isRunning { try await Task.sleep(for: .milliseconds(200)) }
            guard let data = FileManager.default.contents(atPath: out) else {
                throw BenchFailure("the API probe wrote no result (exit \(process.exitCode.map(String.init) ?? "?")): \(process.log.suffix(1000))")
            }
            return try JSONDecoder().decode(Result.self, from: data)
        }
    }
}
