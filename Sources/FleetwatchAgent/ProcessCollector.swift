import FleetwatchProtocol
import Foundation
import Synchronization

/// Reads the bot process's own health from `/proc`: resident memory, CPU use and a log file's size.
///
/// Reports `memory_usage_mb`, `cpu_usage_percent` (of one core, since the previous reading) and,
/// when a log file is configured, `log_file_size_mb`.
public final class ProcessCollector: MetricCollector {
    public let name = "process"
    let logFilePath: String?
    let pid: Int32?
    struct Last { var cpuTicks: Double = -1; var at: ContinuousClock.Instant = .now }
    let last = Mutex(Last())

    /// - Parameters:
    ///   - logFilePath: a log file whose size to report.
    ///   - pid: another process to watch (the sidecar's child); nil for this process.
    public init(logFilePath: String? = nil, pid: Int32? = nil) {
        self.logFilePath = logFilePath
        self.pid = pid
    }

    public func collect() async throws -> [CollectedValue] {
        var out: [CollectedValue] = []
        let proc = pid.map { "/proc/\($0)" } ?? "/proc/self"
        if let statm = try? String(contentsOfFile: "\(proc)/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Double(fields[1]) {
                let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
                out.append(.gauge("memory_usage_mb", (pages * pageSize / 1_048_576 * 10).rounded() / 10))
            }
        }
        if let stat = try? String(contentsOfFile: "\(proc)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After the command name: state is field 0, utime is 11, stime is 12.
            if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) {
                let ticks = user + system
                let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
                let now = ContinuousClock.now
                let percent: Double? = last.withLock { l in
                    defer { l = Last(cpuTicks: ticks, at: now) }
                    guard l.cpuTicks >= 0 else { return nil }
                    let elapsed = (now - l.at).inSeconds
                    guard elapsed > 0 else { return nil }
                    return (ticks - l.cpuTicks) / hz / elapsed * 100
                }
                if let percent { out.append(.gauge("cpu_usage_percent", (percent * 10).rounded() / 10)) }
            }
        }
        if let logFilePath {
            let size = (try? FileManager.default.attributesOfItem(atPath: logFilePath)[.size] as? NSNumber)?
                .doubleValue ?? 0
            out.append(.gauge("log_file_size_mb", (size / 1_048_576 * 1000).rounded() / 1000))
        }
        return out
    }
}
