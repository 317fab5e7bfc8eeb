import Foundation

/// Mail text that no alert content can break out of. Alert summaries carry free text (a stop's reason, a bot's
/// state string): in a header it is stripped of control characters and, when not plain ASCII, encoded as RFC 2047
/// words, so CR/LF can never start a new header; the body is quoted-printable (RFC 2045), so every line is short
/// ASCII with CRLF endings; and the SMTP client dot-stuffs every line (RFC 5321 §4.5.2), so no line ends the data.
public enum MailFormat {
    /// `text` as a header value: control characters removed; RFC 2047 base64 words (folded) when it is not plain
    /// printable ASCII or is long.
    public static func header(_ text: String) -> String {
        let clean = String(String.UnicodeScalarView(text.unicodeScalars.filter { !isControl($0) }))
        if clean.unicodeScalars.allSatisfy({ $0.isASCII }), clean.utf8.count <= 900, !clean.contains("=?") {
            return clean
        }
        // Encoded words of at most 75 characters: 45 bytes of UTF-8 → 60 of base64, plus "=?UTF-8?B?" and "?=".
        var words: [String] = []
        var chunk: [UInt8] = []
        for scalar in clean.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > 45 {
                words.append(word(chunk))
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append(word(chunk)) }
        return words.joined(separator: "\r\n ")
    }

    private static func word(_ bytes: [UInt8]) -> String {
        "=?UTF-8?B?\(Data(bytes).base64EncodedString())?="
    }

    /// C0 and C1 control characters, DEL, and the Unicode line and paragraph separators.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        s.value < 0x20 || (0x7F...0x9F).contains(s.value) || s.value == 0x2028 || s.value == 0x2029
    }

    /// `text` as a quoted-printable body: line breaks (LF, CR or CRLF) become CRLF, other control characters
    /// except tab are dropped, and lines are at most 76 characters (soft breaks).
    public static func quotedPrintable(_ text: String) -> String {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        return normalized.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            var out = ""
            var length = 0
            let bytes = Array(String(String.UnicodeScalarView(line.unicodeScalars.filter { $0 == "\t" || !isControl($0) })).utf8)
            for (i, b) in bytes.enumerated() {
                let last = i == bytes.count - 1
                let literal = (b >= 33 && b <= 126 && b != UInt8(ascii: "=")) || ((b == 0x20 || b == 0x09) && !last)
                let piece = literal ? String(UnicodeScalar(b)) : String(format: "=%02X", b)
                if length + piece.count > 75 {
                    out += "=\r\n"
                    length = 0
                }
                out += piece
                length += piece.count
            }
            return out
        }.joined(separator: "\r\n")
    }

    /// RFC 5321 transparency: every line that starts with "." gets another one.
    public static func dotStuffed(_ message: String) -> String {
        message.components(separatedBy: "\r\n").map { $0.hasPrefix(".") ? "." + $0 : $0 }.joined(separator: "\r\n")
    }

    /// Whether `address` is a bare `local@domain` mail address a header and an SMTP command can carry as is.
    public static func isPlainAddress(_ address: String) -> Bool {
        guard address.utf8.count <= 254, let at = address.lastIndex(of: "@"), at != address.startIndex,
              address.index(after: at) != address.endIndex else { return false }
        return address.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && !"<>()[],;:\"\\".unicodeScalars.contains($0) }
    }
}
