import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// `sslmode` means what libpq means, against a private PostgreSQL with TLS on (a CA and a server certificate
/// for `localhost` made by the test), and the hub fails at start, clearly, when the setting cannot work.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct DatabaseTLSTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let logger = Logger(label: "test.tls")

    /// Makes a CA, a server certificate for DNS:localhost signed by it, and an unrelated CA.
    static func certificates(in dir: String) async throws {
        let script = """
            set -e
            cd '\(dir)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=fleetwatch-test-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
            printf 'subjectAltName=DNS:localhost\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
            openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.pem -days 2 -subj /CN=other-ca 2>/dev/null
            chmod 600 server.key
            if [ "$(id -u)" = 0 ]; then chown postgres: server.key server.pem; fi
            """
        let p = try ChildProcess("/bin/bash", ["-c", script], logPath: dir + "/openssl.log")
        #expect(await p.stop(signal: 0, timeout: .seconds(60)) == 0, "openssl failed: \(p.log)")
    }

    /// Whether a connection with `url` is encrypted (pg_stat_ssl), or the error that refused it.
    static func connect(_ url: DatabaseURL) async -> Result<Bool, DatabaseProbe.Failure> {
        do {
            try await DatabaseProbe.connectOnce(url, logger: logger)
        } catch let f as DatabaseProbe.Failure {
            return .failure(f)
        } catch {
            return .failure(DatabaseProbe.Failure(description: "\(error)", retryable: false))
        }
        do {
            return .success(try await TestDatabase(url: url).withClient { client in
                let rows = try await client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: logger)
                for try await ssl in rows.decode(Bool.self) { return ssl }
                return false
            })
        } catch {
            return .failure(DatabaseProbe.Failure(description: String(reflecting: error), retryable: false))
        }
    }

    @Test(.timeLimit(.minutes(4)))
    func sslModesFollowLibpq() async throws {
        let pg = PrivatePostgres.forTest("pg-tls")
        let dir = pg.directory
        try await pg.removing {
            try await pg.start()
            try await pg.stop()
            try await Self.certificates(in: dir)
            try pg.configure("ssl = on\nssl_cert_file = '\(dir)/server.pem'\nssl_key_file = '\(dir)/server.key'")
            let plain = try await pg.start()
            let port = plain.port
            func url(_ host: String, _ query: String) throws -> DatabaseURL {
                try DatabaseURL("postgres://fleetwatch@\(host):\(port)/postgres?\(query)", environment: [:], home: dir)
            }

            // verify-full: the right CA and the certificate's host name.
            #expect(try await Self.connect(url("localhost", "sslmode=verify-full&sslrootcert=\(dir)/ca.pem")).get() == true)
            // A host name the certificate was not issued for, or another CA: refused, saying why.
            guard case .failure(let wrongName) = await Self.connect(try url("127.0.0.1", "sslmode=verify-full&sslrootcert=\(dir)/ca.pem")) else {
                Issue.record("verify-full accepted a certificate for another host name"); return
            }
            #expect(wrongName.description.contains("TLS with 127.0.0.1:\(port) failed") && !wrongName.retryable, "\(wrongName)")
            guard case .failure(let wrongCA) = await Self.connect(try url("localhost", "sslmode=verify-full&sslrootcert=\(dir)/other-ca.pem")) else {
                Issue.record("verify-full accepted a certificate from another CA"); return
            }
            #expect(wrongCA.description.contains("signed by sslrootcert"), "\(wrongCA)")
            // verify-ca checks the CA but not the name.
            #expect(try await Self.connect(url("127.0.0.1", "sslmode=verify-ca&sslrootcert=\(dir)/ca.pem")).get() == true)
            guard case .failure = await Self.connect(try url("127.0.0.1", "sslmode=verify-ca&sslrootcert=\(dir)/other-ca.pem")) else {
                Issue.record("verify-ca accepted a certificate from another CA"); return
            }
            // require: encrypted without a CA; with a CA file it is checked as verify-ca (libpq's rule).
            #expect(try await Self.connect(url("127.0.0.1", "sslmode=require")).get() == true)
            guard case .failure = await Self.connect(try url("127.0.0.1", "sslmode=require&sslrootcert=\(dir)/other-ca.pem")) else {
                Issue.record("require with sslrootcert did not check the CA"); return
            }
            // prefer encrypts when offered; disable never does.
            #expect(try await Self.connect(url("127.0.0.1", "sslmode=prefer")).get() == true)
            #expect(try await Self.connect(url("127.0.0.1", "sslmode=disable")).get() == false)

            // The shared test server has no TLS: prefer connects in plaintext, require says what is wrong at once.
            var noTLS = try #require(TestDatabase.serverURL)
            noTLS.sslMode = .prefer
            #expect(try await Self.connect(noTLS).get() == false)
            noTLS.sslMode = .require
            guard case .failure(let unsupported) = await Self.connect(noTLS) else { Issue.record("require connected without TLS"); return }
            #expect(unsupported.description.contains("does not offer TLS") && !unsupported.retryable, "\(unsupported)")

            // A hub with verify-full connects and serves.
            var tlsDB = TestDatabase(url: try url("localhost", "sslmode=verify-full&sslrootcert=\(dir)/ca.pem"))
            tlsDB = try await TestDatabase.create(on: tlsDB.url, prefix: "fw_tls_", logger: Self.logger)
            let hub = try HubUnderTest(database: tlsDB)
            try await hub.start()
            #expect(hub.log.contains("sslmode=verify-full"))
            await hub.kill(SIGTERM)
        }
    }

    /// A hub whose database setting cannot work exits at once with a message naming it, instead of hanging.
    @Test(.timeLimit(.minutes(2)))
    func impossibleSettingsEndTheHubAtOnce() async throws {
        let server = try #require(TestDatabase.serverURL)
        var require = server
        require.sslMode = .require
        let cases: [(String, String)] = [
            (require.urlString, "does not offer TLS"),
            (server.urlString.replacingOccurrences(of: "sslmode=prefer", with: "sslmode=verify_full"), "sslmode 'verify_full' is not one of"),
            (server.urlString.replacingOccurrences(of: "sslmode=prefer", with: "sslmode=verify-full"), "needs the CA"),
        ]
        for (i, (address, expected)) in cases.enumerated() {
            let started = ContinuousClock.now
            let p = try ChildProcess(builtExecutable("monitor-hub"), ["serve", "--port", "0", "--log-level", "info"],
                                     logPath: NSTemporaryDirectory() + "/fw-tls-hub-\(i).log",
                                     environment: ["FLEETWATCH_DATABASE_URL": address])
            let status = await p.stop(signal: 0, timeout: .seconds(30))
            #expect(status != 0, "the hub should have exited with an error: \(p.log)")
            #expect(p.log.contains(expected), "\(p.log)")
            #expect(ContinuousClock.now - started < .seconds(20))
        }
    }
}
