import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Runs the bot program as a child process and restarts it by policy. The child inherits stdin, stdout and
/// stderr; its exit is noticed by polling `waitpid` (no signal handlers in the sidecar).
actor ChildSupervisor {
    enum RestartPolicy: String, CaseIterable, Sendable {
        /// Restart whenever it exits with a non-zero status or a signal.
        case onFailure = "on-failure"
        /// Restart whenever it exits.
        case always
        /// Never restart; the sidecar exits with the child.
        case never
    }

    let command: [String]
    /// The child's environment (`NAME=value`): the sidecar's, without the hub token, plus where and how to reach
    /// the sidecar (see `MonitorAgentCommand`).
    var environment: [String]
    let policy: RestartPolicy
    let restartDelay: Duration
    let logger: Logger
    private(set) var pid: pid_t?
    private(set) var restarts = 0
    private(set) var lastExit: Int32?
    /// After an emergency stop the child is not restarted, whatever the policy, until a resume.
    private var held = false
    private var finishing = false

    init(command: [String], policy: RestartPolicy, restartDelay: Duration, logger: Logger,
         environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.command = command
        self.environment = environment.map { "\($0.key)=\($0.value)" }.sorted()
        self.policy = policy
        self.restartDelay = restartDelay
        self.logger = logger
    }

    var isRunning: Bool { pid != nil }

    /// Sets the child's environment for its next start.
    func setEnvironment(_ environment: [String: String]) {
        self.environment = environment.map { "\($0.key)=\($0.value)" }.sorted()
    }

    /// Starts the child; throws with the reason when it cannot be started at all.
    func start() throws {
        let path = try Self.resolve(command[0])
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        let rc = Self.spawn(&pid, path, argv, envp)
        guard rc == 0 else { throw SidecarError("cannot start \(command[0]): \(String(cString: strerror(rc)))") }
        self.pid = pid
        logger.notice("started \(command.joined(separator: " ")) as pid \(pid)")
    }

    /// Watches the child until the sidecar is cancelled or, with policy `never`, the child exits. Returns the
    /// child's last exit status.
    func supervise() async -> Int32 {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            guard let pid else {
                if held && !finishing { continue }
                return lastExit ?? 0
            }
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            guard r == pid else { continue }
            self.pid = nil
            let exit = Self.exitCode(status)
            lastExit = exit
            logger.warning("\(command[0]) (pid \(pid)) exited with status \(exit)")
            if held || finishing { continue }
            let restart = policy == .always || (policy == .onFailure && exit != 0)
            guard restart else { return exit }
            try? await Task.sleep(for: restartDelay)
            if held || Task.isCancelled { continue }
            do {
                try start()
                restarts += 1
            } catch {
                logger.error("\(error)")
                return exit
            }
        }
        return lastExit ?? 0
    }

    /// Sends `signal` to the child, holds it down (no restarts) and waits up to `grace` for it to exit;
    /// sends SIGKILL after that. Returns what happened.
    func stop(signal: Int32, grace: Duration) async -> String {
        held = true
        guard let pid else { return "the bot program was not running" }
        kill(pid, signal)
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if self.pid == nil {   // reaped by `supervise` meanwhile
                return "sent \(Self.signalName(signal)) to pid \(pid); it exited with status \(lastExit ?? 0)"
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                self.pid = nil
                lastExit = Self.exitCode(status)
                return "sent \(Self.signalName(signal)) to pid \(pid); it exited with status \(lastExit ?? 0)"
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        guard self.pid != nil else { return "sent \(Self.signalName(signal)) to pid \(pid); it exited with status \(lastExit ?? 0)" }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        self.pid = nil
        return "sent \(Self.signalName(signal)) to pid \(pid); killed it after \(grace) without exit"
    }

    /// Emergency mode: the child is not restarted (whatever the policy) until `release`.
    func hold() { held = true }

    /// The sidecar is shutting down: `supervise` returns without restarting.
    func finish() { held = false; finishing = true }

    /// After a resume: start the child again if it was stopped.
    func release() throws -> String {
        held = false
        guard pid == nil else { return "the bot program is running (pid \(pid!))" }
        try start()
        restarts += 1
        return "restarted the bot program (pid \(pid ?? 0))"
    }

    /// `posix_spawn` with every signal back to its default action and none blocked: the sidecar's runtime
    /// ignores or blocks some signals, and a child must not inherit that (it would not see SIGTERM).
    static func spawn(_ pid: inout pid_t, _ path: String, _ argv: [UnsafeMutablePointer<CChar>?],
                      _ envp: [UnsafeMutablePointer<CChar>?]) -> Int32 {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        return posix_spawn(&pid, path, nil, &attr, argv, envp)
    }

    static func resolve(_ program: String) throws -> String {
        if program.contains("/") { return program }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw SidecarError("\(program): not found in PATH")
    }

    /// A `waitpid` status as a shell would show it: the exit code, or 128 + the signal that ended the process.
    static func exitCode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case SIGKILL: return "SIGKILL"
        case SIGUSR1: return "SIGUSR1"
        case SIGUSR2: return "SIGUSR2"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(signal)"
        }
    }

    static func signal(named name: String) -> Int32? {
        switch name.uppercased().replacingOccurrences(of: "SIG", with: "") {
        case "TERM": return SIGTERM
        case "INT": return SIGINT
        case "KILL": return SIGKILL
        case "USR1": return SIGUSR1
        case "USR2": return SIGUSR2
        case "HUP": return SIGHUP
        default: return Int32(name)
        }
    }
}

/// A sidecar problem the operator must fix.
struct SidecarError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
