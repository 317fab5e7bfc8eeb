import FleetwatchProtocol
import Foundation

/// The sidecar's local token: from `--local-token-file` when it exists, else generated (and written there, mode
/// 0600, when the option names a file).
enum LocalToken {
    static func load(_ path: String?) throws -> String {
        if let path, FileManager.default.fileExists(atPath: path) {
            do { return try EnvironmentSecret.file(path) } catch let f as EnvironmentSecret.Failure {
                throw SidecarError("--local-token-file: \(f.description)")
            }
        }
        var rng = SystemRandomNumberGenerator()
        let token = "fws_" + (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        if let path {
            do { try SecretFile.write(token + "\n", to: path) } catch {
                throw SidecarError("--local-token-file: cannot write \(path): \(error)")
            }
        }
        return token
    }
}
