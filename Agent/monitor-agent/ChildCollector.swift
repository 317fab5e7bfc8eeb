import FleetwatchAgent
import Synchronization

/// The child's health at every flush: memory, CPU and log-file size from `/proc` (through the agent's
/// `ProcessCollector`, renewed when the child restarts), `bot_alive` (1/0), `bot_restarts` and `bot_status`.
final class ChildCollector: MetricCollector {
    let name = "child"
    let child: ChildSupervisor
    let logFile: String?
    private let current = Mutex<(pid: Int32, collector: ProcessCollector)?>(nil)

    init(child: ChildSupervisor, logFile: String?) {
        self.child = child
        self.logFile = logFile
    }

    func collect() async throws -> [CollectedValue] {
        let pid = await child.pid
        let restarts = await child.restarts
        var out: [CollectedValue] = [.gauge("bot_alive", pid == nil ? 0 : 1), .gauge("bot_restarts", Double(restarts)),
                                     .state("bot_status", pid == nil ? "stopped" : "running")]
        if let pid {
            let collector = current.withLock { c -> ProcessCollector in
                if let c, c.pid == pid { return c.collector }
                let fresh = ProcessCollector(logFilePath: logFile, pid: pid)
                c = (pid, fresh)
                return fresh
            }
            out += try await collector.collect()
        } else if let logFile {
            out += try await ProcessCollector(logFilePath: logFile, pid: -1).collect().filter { $0.name == "log_file_size_mb" }
        }
        return out
    }
}
