import Foundation
import Logging
import PostgresNIO

/// The CPU time of a PostgreSQL server on this machine: its postmaster and every process it started (backends,
/// WAL writer, checkpointer …), the ones that ended included (the postmaster's reaped children). nil when the server
/// is not local (its backend's process is not here) or not readable.
struct ServerCPU {
    let postmaster: pid_t

    /// The server behind `db`: the parent of the backend that answers a query; or why it was not found. The
    /// backend's process is read while its connection is open (a closed connection's backend exits at once).
    static func find(_ db: BenchDatabase, logger: Logger) async -> Result<ServerCPU, BenchFailure> {
        var last = BenchFailure("the server named no backend process")
        // Asked up to three times: the one query of the run that must not fail on a passing hiccup.
        for attempt in 1...3 {
            do {
                let found = try await db.withClient(logger: logger) { client -> Result<ServerCPU, BenchFailure> in
                    guard let backend = try await client.query("SELECT pg_backend_pid()", logger: logger).decode(Int32.self).all().first else {
                        return .failure(BenchFailure("the server named no backend process"))
                    }
                    guard let stat = Self.stat(pid_t(backend)), stat.command == "postgres", let parent = pid_t(stat.fields[1]),
                          Self.stat(parent)?.command == "postgres" else {
                        return .failure(BenchFailure("backend process \(backend) is not a local postgres process (the server is on another machine?)"))
                    }
                    return .success(ServerCPU(postmaster: parent))
                }
                if case .success = found { return found }
                if case .failure(let why) = found { last = why }
            } catch {
                last = BenchFailure("asking the server for its backend's process failed: \(String(reflecting: error))")
            }
            if attempt < 3 { try? await Task.sleep(for: .milliseconds(200)) }
        }
        return .failure(last)
    }

    /// CPU seconds used so far by the server and its processes.
    func seconds() -> Double {
        guard let main = Self.stat(postmaster), main.fields.count > 14 else { return 0 }
        // utime, stime, cutime, cstime: fields 14–17 in proc(5), 12–15 after the command (1-based: state is 3).
        var ticks = main.fields[11...14].compactMap { Double($0) }.reduce(0, +)
        let children = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for name in children {
            guard let pid = pid_t(name), pid != postmaster, let s = Self.stat(pid), s.fields.count > 12,
                  pid_t(s.fields[1]) == postmaster else { continue }
            ticks += (Double(s.fields[11]) ?? 0) + (Double(s.fields[12]) ?? 0)
        }
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// A process's command and the fields after it (state first).
    static func stat(_ pid: pid_t) -> (command: String, fields: [Substring])? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        return (String(text[text.index(after: open)..<close]), text[text.index(after: close)...].split(separator: " "))
    }
}
