import FleetwatchProcesses
import FleetwatchStorage
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real child process for end-to-end tests: started with `posix_spawn`, output to a log file,
/// stopped with a signal of the test's choice (SIGKILL included).
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let logPath: String
    private var exited = false

    public init(_ path: String, _ args: [String], logPath: String, environment: [String: String] = [:]) throws {
        self.logPath = logPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        // Default signal actions and no blocked signals: the test runner ignores or blocks some, and a child
        // (a shell script's `trap` above all) must see SIGTERM as usual.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
        guard rc == 0 else { throw TestSupportError("cannot start \(path): \(String(cString: strerror(rc)))") }
        self.pid = pid
        LiveChildren.add(pid)
    }

    /// Sends `signal` and waits for the process to end; returns its exit status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(20)) async -> Int32 {
        guard !exited else { return 0 }
        kill(pid, signal)
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while ContinuousClock.now < deadline {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { markExited(); return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        markExited()
        return status
    }

    /// Whether the process is still running.
    public var isRunning: Bool {
        guard !exited else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            markExited()
            exitCode = Spawn.exitCode(status)
            return false
        }
        return true
    }

    /// The exit code (128 + signal when killed), once `isRunning` has seen the process end by itself.
    public private(set) var exitCode: Int32?

    /// The log so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    private func markExited() {
        exited = true
        LiveChildren.remove(pid)
    }

    deinit {
        if !exited { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0); LiveChildren.remove(pid) }
    }
}

/// The children still running, killed when the test process exits: a test that stops its hubs from a `defer`
/// task may be the last one to run, and the process can end before that task does.
enum LiveChildren {
    private static let pids = Mutex<Set<pid_t>>([])
    private static let registered = Mutex(false)

    static func add(_ pid: pid_t) {
        pids.withLock { _ = $0.insert(pid) }
        let first = registered.withLock { done in defer { done = true }; return !done }
        if first { atexit { LiveChildren.killAll() } }
    }

    static func remove(_ pid: pid_t) { pids.withLock { _ = $0.remove(pid) } }

    static func killAll() {
        for pid in pids.withLock({ $0 }) { kill(pid, SIGKILL) }
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

private let handedOutPorts = Mutex<Set<Int>>([])

/// A free TCP port on 127.0.0.1, never the same twice in one test run.
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`, 32768–60999 by default): a port from that range,
/// free when handed out, could become the source port of one of the many connections the tests open before the hub
/// given it had bound it, and that hub then ended with "Address already in use" (seen once in CI).
public func freeTCPPort() throws -> Int {
    for _ in 0..<500 {
        let port = Int.random(in: 20_000..<32_000)
        if handedOutPorts.withLock({ $0.contains(port) }) || !LoopbackPort.canBind(port) { continue }
        if handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
    }
    // Almost everything below the range taken: a port the kernel picks, as before.
    for _ in 0..<50 {
        let port = try LoopbackPort.free()
        if handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
    }
    throw TestSupportError("no unused port found")
}
