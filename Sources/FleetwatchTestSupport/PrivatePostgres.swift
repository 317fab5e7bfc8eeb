import FleetwatchStorage
import Foundation

/// A PostgreSQL cluster of a test's or scenario's own (scripts/pg-private), so it can be stopped, started and
/// reconfigured without touching the shared test server.
public struct PrivatePostgres: Sendable {
    public let script: String
    public let directory: String
    public let logDir: String

    public init(script: String, directory: String, logDir: String) {
        self.script = script
        self.directory = directory
        self.logDir = logDir
    }

    /// Starts the cluster (on the same port as before when restarted) and returns its URL. A cluster that does not
    /// start is tried once more (a new one made again, on another port), the server log's reason printed; a failure
    /// says why, from the server log, which goes with the cluster's directory.
    @discardableResult
    public func start() async throws -> DatabaseURL {
        var reasons: [String] = []
        for _ in 0..<2 {
            let fresh = !FileManager.default.fileExists(atPath: directory + "/PG_VERSION")
            let out = "\(logDir)/pg-private-\(UUID().uuidString).out"
            // A port this process handed out (freeTCPPort), so a hub started by the same tests cannot take it; the
            // script keeps a cluster's first port on restarts.
            let p = try ChildProcess("/bin/bash", [script, "start", directory, "\(try freeTCPPort())"], logPath: out)
            let status = await p.stop(signal: 0, timeout: .seconds(120))
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if status == 0, let line = text.split(separator: "\n").last(where: { $0.hasPrefix("postgres://") }) {
                return try DatabaseURL(String(line), environment: [:])
            }
            let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? "(no server log)"
            reasons.append(text + "server log:\n" + log.split(separator: "\n").suffix(15).joined(separator: "\n"))
            guard reasons.count == 1 else { break }
            FileHandle.standardError.write(Data("PostgreSQL did not start in \(directory); trying again: \(reasons[0])\n".utf8))
            try? await stop()
            if fresh { try? FileManager.default.removeItem(atPath: directory) } else { try await Task.sleep(for: .seconds(1)) }
        }
        throw TestSupportError("cannot start PostgreSQL in \(directory): " + reasons.joined(separator: "\n-- then:\n"))
    }

    /// A streaming standby of this (running) cluster in `directory` (with `synchronous`, every commit on this
    /// cluster waits for it); returns its URL.
    public func standby(in directory: String, synchronous: Bool) async throws -> (PrivatePostgres, DatabaseURL) {
        let out = "\(logDir)/pg-private-standby-\(UUID().uuidString).out"
        var args = [script, "standby", self.directory, directory, "\(try freeTCPPort())"]
        if synchronous { args.append("sync") }
        let p = try ChildProcess("/bin/bash", args, logPath: out)
        let status = await p.stop(signal: 0, timeout: .seconds(180))
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard status == 0, let line = text.split(separator: "\n").last(where: { $0.hasPrefix("postgres://") }) else {
            throw TestSupportError("cannot make a standby of \(self.directory): \(text)")
        }
        return (PrivatePostgres(script: script, directory: directory, logDir: logDir), try DatabaseURL(String(line), environment: [:]))
    }

    /// Runs `scripts/pg-private COMMAND DIR` (promote, kill).
    public func run(_ command: String) async throws {
        let p = try ChildProcess("/bin/bash", [script, command, directory], logPath: "\(logDir)/pg-private-\(command).out")
        guard await p.stop(signal: 0, timeout: .seconds(120)) == 0 else { throw TestSupportError("pg-private \(command) \(directory) failed") }
    }

    public func stop() async throws {
        let p = try ChildProcess("/bin/bash", [script, "stop", directory], logPath: "\(logDir)/pg-private-stop.out")
        guard await p.stop(signal: 0, timeout: .seconds(120)) == 0 else { throw TestSupportError("cannot stop PostgreSQL in \(directory)") }
    }

    /// Appends settings to the cluster's postgresql.conf (they apply at the next start).
    public func configure(_ lines: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/postgresql.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(("\n" + lines + "\n").utf8))
        try handle.close()
    }

    /// Replaces the cluster's pg_hba.conf (applies at the next start).
    public func setHBA(_ text: String) throws {
        try text.write(toFile: directory + "/pg_hba.conf", atomically: false, encoding: .utf8)
    }

    /// A cluster in the test artifacts folder (`FLEETWATCH_TEST_ARTIFACTS`), named `prefix` and a random suffix.
    public static func forTest(_ prefix: String) -> PrivatePostgres {
        let artifacts = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        return PrivatePostgres(script: repo + "/scripts/pg-private", directory: "\(artifacts)/\(prefix)-\(UUID().uuidString.prefix(8))",
                               logDir: artifacts)
    }

    /// Starts the cluster, runs `body` with its URL, and removes the cluster before returning or throwing (awaited:
    /// a removal left to a task can outlive a short test process and leave the cluster running).
    public func whileRunning<T: Sendable>(_ body: (DatabaseURL) async throws -> T) async throws -> T {
        try await removing { try await body(try await start()) }
    }

    /// Runs `body` (the cluster already started, or started by it), then removes the cluster before returning or
    /// throwing, awaited.
    public func removing<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            let result = try await body()
            await remove()
            return result
        } catch {
            await remove()
            throw error
        }
    }

    public func remove() async {
        try? await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
