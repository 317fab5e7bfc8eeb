@testable import FleetwatchStorage
import Foundation
import Testing

/// The database address is read the way libpq reads it.
@Suite struct DatabaseURLTests {
    let home = NSTemporaryDirectory() + "/fw-dburl-\(UUID().uuidString)"

    @Test func libpqDefaultsAndParameters() throws {
        let u = try DatabaseURL("postgres://alice:p%40ss@db.internal:6432/fleet?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=hub-a&connect_timeout=4",
                                environment: [:], home: home)
        #expect(u.endpoints == [.init(host: "db.internal", port: 6432)])
        #expect(u.username == "alice" && u.password == "p@ss" && u.database == "fleet")
        #expect(u.sslMode == .verifyFull && u.sslRootCert == "/etc/ca.pem")
        #expect(u.applicationName == "hub-a" && u.connectTimeout == 4)
        #expect(!u.description.contains("p@ss") && u.description.contains("***"))
        // libpq's default sslmode is prefer; the user is the OS user; the database is the user's name.
        let bare = try DatabaseURL("postgresql://db", environment: [:], home: home)
        #expect(bare.sslMode == .prefer && bare.port == 5432 && bare.username == DatabaseURL.systemUserName() && bare.database == bare.username)
    }

    @Test func severalHostsAndTargetSessionAttrs() throws {
        let u = try DatabaseURL("postgres://hub@pg-a:5432,pg-b:5433,[::1]/fw?target_session_attrs=read-write", environment: [:], home: home)
        #expect(u.endpoints.map(\.display) == ["pg-a:5432", "pg-b:5433", "[::1]:5432"])
        #expect(u.targetSessionAttrs == .readWrite)
        // urlString reads back to the same address.
        #expect(try DatabaseURL(u.urlString, environment: [:], home: home) == u)
    }

    @Test func environmentFillsWhatTheURLLeavesOut() throws {
        let env = ["PGHOST": "pg-1,pg-2", "PGPORT": "5433", "PGUSER": "bob", "PGPASSWORD": "from-env", "PGDATABASE": "fw",
                   "PGSSLMODE": "require", "PGAPPNAME": "x", "PGTARGETSESSIONATTRS": "primary"]
        let u = try DatabaseURL("postgres://", environment: env, home: home)
        #expect(u.endpoints == [.init(host: "pg-1", port: 5433), .init(host: "pg-2", port: 5433)])
        #expect(u.username == "bob" && u.password == "from-env" && u.database == "fw")
        #expect(u.sslMode == .require && u.applicationName == "x" && u.targetSessionAttrs == .primary)
        // What the URL says wins.
        let v = try DatabaseURL("postgres://carol:pw@h:1/d?sslmode=disable", environment: env, home: home)
        #expect(v.username == "carol" && v.password == "pw" && v.endpoints == [.init(host: "h", port: 1)] && v.sslMode == .disable)
        // A Unix socket directory as the host.
        let s = try DatabaseURL("postgres:///fw?host=/var/run/postgresql", environment: [:], home: home)
        #expect(s.endpoints.first?.isSocket == true && s.database == "fw")
        #expect(try DatabaseURL(s.urlString, environment: [:], home: home) == s)
    }

    @Test func passwordFile() throws {
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let file = home + "/.pgpass"
        try "# comment\nother:*:*:*:nope\ndb:5432:fleet:hub:s3cr\\:et\n*:*:*:*:fallback\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o600)
        #expect(try DatabaseURL("postgres://hub@db/fleet", environment: [:], home: home).password == "s3cr:et")
        #expect(try DatabaseURL("postgres://hub@elsewhere/fleet", environment: [:], home: home).password == "fallback")
        // PGPASSWORD comes first; a file others may read is ignored, as libpq does.
        #expect(try DatabaseURL("postgres://hub@db/fleet", environment: ["PGPASSWORD": "env"], home: home).password == "env")
        chmod(file, 0o644)
        #expect(try DatabaseURL("postgres://hub@db/fleet", environment: [:], home: home).password == nil)
    }

    @Test func mistakesNameTheKeyAndHideThePassword() {
        func message(_ s: String, _ env: [String: String] = [:]) -> String {
            do { _ = try DatabaseURL(s, environment: env, home: home); return "" } catch { return "\(error)" }
        }
        let bogus = message("postgres://u:hunter2@h/d?sslmode=verify_full")
        #expect(bogus.contains("sslmode 'verify_full' is not one of disable, allow, prefer, require, verify-ca, verify-full"))
        #expect(!bogus.contains("hunter2"))
        #expect(message("postgres://u@h/d?sslmod=require").contains("unknown parameter 'sslmod'"))
        #expect(message("postgres://u@h:99999/d").contains("port '99999' is not 1–65535"))
        #expect(message("mysql://u@h/d").contains("expected postgres://"))
        #expect(message("postgres://u@h/d", ["PGSSLMODE": "nope"]).contains("sslmode 'nope'"))
        #expect(message("postgres://u@h/d?target_session_attrs=writable").contains("target_session_attrs 'writable'"))
        #expect(message("postgres://u@h/d?sslmode=require&sslrootcert=system").contains("sslrootcert=system needs sslmode=verify-full"))
        #expect(message("postgres://u@a,b/d?port=1,2,3").contains("3 ports for 2 hosts"))
        #expect(!message("postgres://u@h/d?password=hunter2&sslmode=x").contains("hunter2"))
    }

    @Test func verifyModesNeedACA() throws {
        let u = try DatabaseURL("postgres://u@h/d?sslmode=verify-full", environment: [:], home: home)
        #expect(throws: StorageError.self) { try u.clientConfiguration() }
        do { _ = try u.clientConfiguration() } catch { #expect("\(error)".contains("sslrootcert")) }
        // require with no CA: encrypted, not verified; with a CA file it is checked (libpq's rule).
        #expect(throws: Never.self) { try DatabaseURL("postgres://u@h/d?sslmode=require", environment: [:], home: home).clientConfiguration() }
    }
}
