import Crypto
import Foundation
import NIOCore

/// Bot tokens: 32 random bytes shown once as `fwb_<base64url>`; only their SHA-256 is stored.
/// A token has 256 bits of entropy, so a fast hash is enough (no password-style stretching needed).
public enum BotToken {
    /// A new random token.
    public static func generate(prefix: String = "fwb_") -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let b64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return prefix + b64
    }

    /// The stored form of a token (bytea).
    public static func hash(_ token: String) -> ByteBuffer {
        ByteBuffer(bytes: Array(SHA256.hash(data: Data(token.utf8))))
    }
}
