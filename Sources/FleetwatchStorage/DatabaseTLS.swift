import Foundation
import NIOSSL
import PostgresNIO

/// libpq's `sslmode` as a PostgresNIO TLS setting:
///
/// | sslmode | encrypted | server certificate |
/// |---|---|---|
/// | `disable` | never | — |
/// | `allow`, `prefer` | if the server offers TLS | not checked |
/// | `require` | always | not checked; checked as `verify-ca` when `sslrootcert` names a CA file (as libpq does) |
/// | `verify-ca` | always | signed by `sslrootcert` |
/// | `verify-full` | always | signed by `sslrootcert` (or the system's CAs with `sslrootcert=system`) and issued for the host name |
///
/// `allow` tries TLS first (libpq tries plaintext first); both connect to servers with and without TLS.
enum DatabaseTLS {
    /// Whether TLS is off, tried, or required, and with which settings.
    enum Choice {
        case disable
        case prefer(TLSConfiguration)
        case require(TLSConfiguration)

        var client: PostgresClient.Configuration.TLS {
            switch self {
            case .disable: .disable
            case .prefer(let c): .prefer(c)
            case .require(let c): .require(c)
            }
        }

        var connection: PostgresConnection.Configuration.TLS {
            get throws {
                switch self {
                case .disable: return .disable
                case .prefer(let c): return .prefer(try NIOSSLContext(configuration: c))
                case .require(let c): return .require(try NIOSSLContext(configuration: c))
                }
            }
        }
    }

    static func choice(_ url: DatabaseURL) throws -> Choice {
        switch url.sslMode {
        case .disable:
            return .disable
        case .allow, .prefer:
            return .prefer(try configuration(url, verification: .none, roots: nil))
        case .require:
            if let root = url.sslRootCert, root != "system" {
                return .require(try configuration(url, verification: .noHostnameVerification, roots: root))
            }
            return .require(try configuration(url, verification: .none, roots: nil))
        case .verifyCA, .verifyFull:
            guard let root = url.sslRootCert else {
                throw StorageError("database URL: sslmode=\(url.sslMode.rawValue) needs the CA that signed the server's certificate: "
                                   + "sslrootcert=/path/to/ca.pem (or ~/.postgresql/root.crt, or sslrootcert=system for the system's CAs)")
            }
            return .require(try configuration(url, verification: url.sslMode == .verifyFull ? .fullVerification : .noHostnameVerification,
                                              roots: root))
        }
    }

    private static func configuration(_ url: DatabaseURL, verification: CertificateVerification, roots: String?) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = verification
        if let roots, roots != "system" {
            guard FileManager.default.isReadableFile(atPath: roots) else {
                throw StorageError("database URL: sslrootcert \(roots) cannot be read")
            }
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(roots))
            } catch {
                throw StorageError("database URL: sslrootcert \(roots) is not a PEM certificate file (\(error))")
            }
        }
        switch (url.sslCert, url.sslKey) {
        case (nil, nil):
            break
        case (let cert?, let key?):
            try checkKeyFile(key)
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
            } catch {
                throw StorageError("database URL: sslcert \(cert) is not a PEM certificate file (\(error))")
            }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            } catch {
                throw StorageError("database URL: sslkey \(key) is not a PEM private key (\(error))")
            }
        case (.some, nil):
            throw StorageError("database URL: sslcert is set but sslkey is not: give the client certificate's private key")
        case (nil, .some):
            throw StorageError("database URL: sslkey is set but sslcert is not: give the client certificate")
        }
        return tls
    }

    /// libpq refuses a private key others may read: 0600 or stricter, or 0640 when root owns it.
    static func checkKeyFile(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw StorageError("database URL: sslkey \(path) cannot be read") }
        let mode = st.st_mode & 0o777
        let limit: mode_t = st.st_uid == 0 ? 0o640 : 0o600
        guard mode & ~limit == 0 else {
            throw StorageError("database URL: sslkey \(path) has group or world access (mode \(String(mode, radix: 8))); "
                               + "chmod 0600 it (0640 if root owns it)")
        }
    }
}
