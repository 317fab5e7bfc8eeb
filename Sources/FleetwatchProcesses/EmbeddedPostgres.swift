import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Logging

/// A private PostgreSQL cluster in a data directory, created and started from the installed server
/// binaries, so a newcomer needs no database set-up. PostgreSQL refuses to run as root: when the hub
/// runs as root, the cluster runs as the `postgres` system user (`runuser`).
///
/// Least privilege: the cluster's superuser is `postgres` (password in `pg-admin-password`); the hub connects as
/// `fleetwatch` (password in `pg-password`), a role that owns the `fleetwatch` database and nothing else — it
/// cannot create roles or databases, read other roles' passwords or run programs on the server. Both files are
/// created mode 0600. Clusters made before this (superuser `fleetwatch`, no `pg-admin-password`) keep working;
/// the hub warns at every start (docs/security.md, "The database role").
public struct EmbeddedPostgres: Sendable {
    /// Where the cluster lives: `<dataDirectory>/pg` (cluster), `pg.log`, `pg-password`, `pg-admin-password`.
    public var dataDirectory: String
    /// TCP port on 127.0.0.1; 0 picks a free one at first start and keeps it.
    public var port: Int
    /// Directory of `initdb`/`pg_ctl`; nil finds it via `pg_config --bindir` or /usr/lib/postgresql.
    public var binDirectory: String?
    /// The unprivileged user that runs the cluster when the hub runs as root.
    public var systemUser: String = "postgres"
    let logger: Logger

    public init(dataDirectory: String, port: Int = 0, binDirectory: String? = nil, logger: Logger) {
        // Absolute: PostgreSQL runs in its data directory, so relative paths (socket, log) would break.
        let absolute = dataDirectory.hasPrefix("/") ? dataDirectory
            : FileManager.default.currentDirectoryPath + "/" + dataDirectory
        self.dataDirectory = (absolute as NSString).standardizingPath
        self.port = port
        self.binDirectory = binDirectory
        self.logger = logger
    }

    var clusterDirectory: String { dataDirectory + "/pg" }
    var passwordFile: String { dataDirectory + "/pg-password" }
    var adminPasswordFile: String { dataDirectory + "/pg-admin-password" }
    /// The hub's role and database, and the cluster's superuser.
    public static let hubRole = "fleetwatch"
    public static let adminRole = "postgres"
    var logFile: String { dataDirectory + "/pg.log" }
    var isRoot: Bool { geteuid() == 0 }

    /// Creates the cluster if needed, starts it if it is not running, and returns the hub's address, the
    /// superuser's (nil for a cluster made before least privilege) and whether this call started it (only then
    /// should the caller stop it: a hub may be using a running cluster).
    public func start() throws -> (url: DatabaseURL, admin: DatabaseURL?, startedHere: Bool) {
        let bin = try findBinDirectory()
        let fm = FileManager.default
        try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        if isRoot {
            // The cluster runs as another user, who must pass through the data directory (not read it): with a
            // strict umask it would be 0700.
            var st = stat()
            if stat(dataDirectory, &st) == 0, st.st_mode & 0o011 != 0o011 { chmod(dataDirectory, (st.st_mode & 0o7777) | 0o011) }
        }
        if !fm.fileExists(atPath: clusterDirectory + "/PG_VERSION") {
            try initialize(bin: bin)
        }
        let password = try String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        var chosenPort = port
        var startedHere = false
        if let running = runningPort() {
            chosenPort = running
            logger.info("embedded PostgreSQL already running on port \(running)")
        } else {
            if chosenPort == 0 { chosenPort = (try? Int(String(contentsOfFile: dataDirectory + "/pg-port", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) ?? 0 }
            if chosenPort == 0 { chosenPort = try LoopbackPort.free() }
            try "\(chosenPort)\n".write(toFile: dataDirectory + "/pg-port", atomically: true, encoding: .utf8)
            try run(bin + "/pg_ctl", ["-D", clusterDirectory, "-l", logFile, "-w", "-t", "60", "-o",
                                      "-p \(chosenPort) -c listen_addresses=127.0.0.1 -c unix_socket_directories='\(clusterDirectory)'",
                                      "start"], asPostgres: true)
            startedHere = true
            logger.info("embedded PostgreSQL started on 127.0.0.1:\(chosenPort) (data in \(clusterDirectory), log in \(logFile))")
        }
        let admin = (try? String(contentsOfFile: adminPasswordFile, encoding: .utf8))
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .map { DatabaseURL(host: "127.0.0.1", port: chosenPort, username: Self.adminRole, password: $0, database: "postgres") }
        return (DatabaseURL(host: "127.0.0.1", port: chosenPort, username: Self.hubRole, password: password, database: Self.hubRole),
                admin, startedHere)
    }

    /// Stops the cluster (fast shutdown: open transactions roll back, committed data is safe).
    public func stop() {
        guard let bin = try? findBinDirectory() else { return }
        do {
            try run(bin + "/pg_ctl", ["-D", clusterDirectory, "-m", "fast", "-w", "stop"], asPostgres: true)
            logger.info("embedded PostgreSQL stopped")
        } catch {
            logger.warning("could not stop embedded PostgreSQL: \(error)")
        }
    }

    private func initialize(bin: String) throws {
        let fm = FileManager.default
        logger.info("creating embedded PostgreSQL cluster in \(clusterDirectory)")
        func randomPassword() -> String {
            var rng = SystemRandomNumberGenerator()
            return (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        }
        // Born 0600: the hub's password, and the superuser's (only `monitor-hub analysts add` and the bootstrap use it).
        try SecretFile.write(randomPassword(), to: passwordFile)
        let adminPassword = randomPassword()
        try SecretFile.write(adminPassword, to: adminPasswordFile)
        try fm.createDirectory(atPath: clusterDirectory, withIntermediateDirectories: true)
        let pwfile = clusterDirectory + ".pwfile"
        try SecretFile.write(adminPassword, to: pwfile)
        defer { try? fm.removeItem(atPath: pwfile) }
        if isRoot {
            try run("/bin/chown", ["-R", "\(systemUser):", clusterDirectory, pwfile], asPostgres: false)
            try run("/bin/chmod", ["0700", clusterDirectory], asPostgres: false)
            fm.createFile(atPath: logFile, contents: nil)
            try run("/bin/chown", ["\(systemUser):", logFile], asPostgres: false)
        }
        try run(bin + "/initdb", ["-D", clusterDirectory, "-U", Self.adminRole, "--pwfile=\(pwfile)",
                                  "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"], asPostgres: true)
        let conf = """

            # fleetwatch embedded defaults
            shared_buffers = 256MB
            max_connections = 200
            synchronous_commit = on
            wal_compression = on
            checkpoint_timeout = 15min
            max_wal_size = 2GB
            """
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: clusterDirectory + "/postgresql.conf"))
        handle.seekToEndOfFile()
        handle.write(Data(conf.utf8))
        try handle.close()
    }

    /// The port of a cluster already running from this directory, if any.
    private func runningPort() -> Int? {
        guard let pid = try? String(contentsOfFile: clusterDirectory + "/postmaster.pid", encoding: .utf8) else { return nil }
        let lines = pid.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3, let p = Int32(lines[0]), kill(p, 0) == 0 else { return nil }
        return Int(lines[3])
    }

    func findBinDirectory() throws -> String {
        if let binDirectory { return binDirectory }
        if let out = try? capture("/usr/bin/pg_config", ["--bindir"]), FileManager.default.fileExists(atPath: out + "/initdb") {
            return out
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        if let v = versions.last, FileManager.default.fileExists(atPath: "\(root)/\(v)/bin/initdb") {
            return "\(root)/\(v)/bin"
        }
        throw StorageError("PostgreSQL server binaries not found. Install them (apt-get install postgresql) or pass --database-url.")
    }

    private func run(_ tool: String, _ args: [String], asPostgres: Bool) throws {
        let (path, argv) = asPostgres && isRoot ? ("/usr/sbin/runuser", ["-u", systemUser, "--", tool] + args) : (tool, args)
        let result = try Spawn.run(path, argv)
        guard result.status == 0 else {
            throw StorageError("\((tool as NSString).lastPathComponent) failed (exit \(result.status)): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)) — see \(logFile)")
        }
    }

    private func capture(_ tool: String, _ args: [String]) throws -> String {
        let result = try Spawn.run(tool, args)
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
