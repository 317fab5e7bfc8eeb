import FleetwatchStorage
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program and waits for it with `posix_spawn`/`waitpid` (Foundation's `Process` can hang when the
/// program leaves a daemon behind, as `pg_ctl start` does). Output goes to files, never to pipes.
public enum Spawn {
    /// Exit status and whatever the program wrote to stdout and stderr.
    static func run(_ path: String, _ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let dir = NSTemporaryDirectory()
        let id = UUID().uuidString
        let outPath = dir + "fleetwatch-\(id).out", errPath = dir + "fleetwatch-\(id).err"
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw StorageError("cannot start \(path): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exit = exitCode(status)
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return (exit, out, err)
    }
}

extension Spawn {
    /// A `waitpid` status as a shell would show it: the exit code, or 128 + the signal that ended the process.
    public static func exitCode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
