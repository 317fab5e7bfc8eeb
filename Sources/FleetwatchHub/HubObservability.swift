import Foundation

/// What a running hub tells about itself beyond ingest, on `/metrics`: per-route HTTP metrics (`RouteMetrics`),
/// its build, and its process (memory, CPU, open files).
enum HubObservability {
    /// This process from /proc (Linux): resident bytes, CPU seconds (user + system), open descriptors, start time.
    struct ProcessFigures: Equatable {
        var residentBytes: Double
        var cpuSeconds: Double
        var openFiles: Double
        var startTime: Double

        static func read() -> ProcessFigures? {
            guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // Fields after the command name: state is field 3; utime 14, stime 15, starttime 22, rss 24.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 22, let utime = Double(fields[11]), let stime = Double(fields[12]),
                  let start = Double(fields[19]), let rssPages = Double(fields[21]) else { return nil }
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK))), page = Double(sysconf(Int32(_SC_PAGESIZE)))
            let files = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
            var boot = 0.0
            if let s = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
               let line = s.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }) {
                boot = Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            return ProcessFigures(residentBytes: rssPages * page, cpuSeconds: (utime + stime) / ticks,
                                  openFiles: Double(files), startTime: boot + start / ticks)
        }
    }
}
