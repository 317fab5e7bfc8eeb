import FleetwatchNotify
import Foundation
import Testing

/// Free text in alerts cannot break a mail's structure.
@Suite struct MailFormatTests {
    /// Decodes RFC 2047 base64 words back to text.
    static func decodeHeader(_ value: String) -> String {
        value.components(separatedBy: "\r\n ").map { word -> String in
            guard word.hasPrefix("=?UTF-8?B?"), word.hasSuffix("?=") else { return word }
            let b64 = String(word.dropFirst(10).dropLast(2))
            return String(decoding: Data(base64Encoded: b64) ?? Data(), as: UTF8.self)
        }.joined()
    }

    static func decodeQP(_ qp: String) -> String {
        let joined = Array(qp.replacingOccurrences(of: "=\r\n", with: "").utf8)
        var bytes: [UInt8] = []
        var i = 0
        while i < joined.count {
            if joined[i] == UInt8(ascii: "="), i + 2 < joined.count, let v = UInt8(String(decoding: joined[i + 1...i + 2], as: UTF8.self), radix: 16) {
                bytes.append(v)
                i += 3
            } else {
                bytes.append(joined[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func headersCannotBeInjected() {
        let hostile = "stop now\r\nBcc: attacker@evil.test\r\n\r\nfake body"
        let h = MailFormat.header(hostile)
        #expect(!h.contains("\r") && !h.contains("\n"))
        #expect(h == "stop nowBcc: attacker@evil.testfake body")
        // Non-ASCII: encoded words, each at most 75 characters, folded; decodes to the text without controls.
        let unicode = MailFormat.header("Verlust über Limit — Börse \u{2028}geschlossen " + String(repeating: "é", count: 60))
        #expect(unicode.components(separatedBy: "\r\n ").allSatisfy { $0.count <= 75 && $0.hasPrefix("=?UTF-8?B?") })
        #expect(Self.decodeHeader(unicode) == "Verlust über Limit — Börse geschlossen " + String(repeating: "é", count: 60))
        #expect(MailFormat.header("[CRITICAL] bot-1 daily_pnl: Daily loss") == "[CRITICAL] bot-1 daily_pnl: Daily loss")
    }

    @Test func quotedPrintableBodiesHaveShortASCIILines() {
        let text = "line one\nreason: a\r\n.\r\nMAIL FROM:<x@y>\r\n" + String(repeating: "ü", count: 100) + " = end \n.leading dot\u{0}"
        let qp = MailFormat.quotedPrintable(text)
        let lines = qp.components(separatedBy: "\r\n")
        #expect(lines.allSatisfy { $0.utf8.count <= 76 && $0.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F } })
        #expect(!qp.contains("\n\n") && !qp.replacingOccurrences(of: "\r\n", with: "").contains("\n") && !qp.contains("\r\r"))
        #expect(Self.decodeQP(qp) == "line one\r\nreason: a\r\n.\r\nMAIL FROM:<x@y>\r\n" + String(repeating: "ü", count: 100) + " = end \r\n.leading dot")
        // After dot-stuffing no line is a lone ".", so the data cannot end early (SMTP smuggling).
        let stuffed = MailFormat.dotStuffed(qp)
        #expect(!stuffed.components(separatedBy: "\r\n").contains("."))
        #expect(stuffed.contains("\r\n..\r\n") && stuffed.contains("\r\n..leading dot"))
    }

    @Test func plainAddresses() {
        #expect(MailFormat.isPlainAddress("ops@fleet.test"))
        for bad in ["ops@fleet.test\r\nRCPT TO:<x@y>", "Ops <ops@fleet.test>", "no-at", "@fleet.test", "a b@c", "ops@"] {
            #expect(!MailFormat.isPlainAddress(bad), "\(bad)")
        }
    }
}
