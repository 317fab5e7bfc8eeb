import FleetwatchStorage
import FleetwatchTestSupport
import Foundation

/// A PostgreSQL cluster of the scenario's own (scripts/pg-private), so it can be stopped and started.
struct PrivatePostgres {
    let script: String
    let directory: String
    let logDir: String

    /// Starts the cluster (on the same port as before when restarted) and returns its URL.
    @discardableResult
    func start() async throws -> DatabaseURL {
        let out = "\(logDir)/pg-private-\(UUID().uuidString).out"
        let p = try ChildProcess("/bin/bash", [script, "start", directory], logPath: out)
        let status = await p.stop(signal: 0, timeout: .seconds(120))
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard status == 0, let line = text.split(separator: "\n").last(where: { $0.hasPrefix("postgres://") }) else {
            throw FaultError("cannot start PostgreSQL in \(directory): \(text)")
        }
        return try DatabaseURL(String(line))
    }

    func stop() async throws {
        let p = try ChildProcess("/bin/bash", [script, "stop", directory], logPath: "\(logDir)/pg-private-stop.out")
        guard await p.stop(signal: 0, timeout: .seconds(120)) == 0 else { throw FaultError("cannot stop PostgreSQL in \(directory)") }
    }

    func remove() async {
        try? await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
