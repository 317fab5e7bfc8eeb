import FleetwatchProtocol
import Foundation
import NIOCore
import Testing

/// One command-id type: 16 bytes on the wire, one text form (lowercase 8-4-4-4-12) in every log and API.
struct CommandIDTests {
    static let sample = CommandID(bytes: [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x46, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])!

    @Test func textAndBytesRoundTrip() {
        #expect(Self.sample.description == "00112233-4455-4677-8899-aabbccddeeff")
        #expect(Self.sample.bytes == [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x46, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        #expect(CommandID("00112233-4455-4677-8899-AABBCCDDEEFF") == Self.sample)     // either case
        #expect(CommandID("00112233445546778899aabbccddeeff") == Self.sample)          // dashes optional, as PostgreSQL reads it
        #expect(CommandID(Self.sample.description) == Self.sample)
        // Foundation's UUID reads the same text (the ledger's column and the API agree).
        #expect(UUID(uuidString: Self.sample.description)?.uuidString.lowercased() == Self.sample.description)
    }

    @Test func badTextAndLengthsAreRefused() {
        for text in ["", "0011", "00112233-4455-4677-8899-aabbccddeef", "00112233-4455-4677-8899-aabbccddeeffa",
                     "0011223-34455-4677-8899-aabbccddeeff", "00112233-4455-4677-8899-aabbccddeegg", "{00112233-4455-4677-8899-aabbccddeeff}",
                     "+0112233-4455-4677-8899-aabbccddeeff", "00112233-4455-4677-8899-aabbccddeef\u{FF10}"] {
            #expect(CommandID(text) == nil, "\(text)")
        }
        #expect(CommandID(bytes: [UInt8](repeating: 1, count: 15)) == nil)
        #expect(CommandID(bytes: [UInt8](repeating: 1, count: 17)) == nil)
    }

    @Test func randomIdsAreVersion4AndDistinct() {
        let ids = (0..<1000).map { _ in CommandID.random() }
        #expect(Set(ids).count == 1000)
        for id in ids {
            #expect(id.bytes[6] >> 4 == 4)            // version 4
            #expect(id.bytes[8] >> 6 == 0b10)         // RFC 4122 variant
        }
    }

    @Test func jsonCarriesTheTextForm() throws {
        struct Box: Codable, Equatable { let id: CommandID }
        let data = try JSONEncoder().encode(Box(id: Self.sample))
        #expect(String(decoding: data, as: UTF8.self) == #"{"id":"00112233-4455-4677-8899-aabbccddeeff"}"#)
        #expect(try JSONDecoder().decode(Box.self, from: data) == Box(id: Self.sample))
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Box.self, from: Data(#"{"id":"not-an-id"}"#.utf8)) }
    }

    @Test func framesCarryTheSixteenBytesInOrder() throws {
        let frame = Frame.commandResult(CommandResultFrame(commandID: Self.sample, step: 1, status: .succeeded, atMs: 5, detail: ""))
        var encoded = frame.encoded()
        let bytes = encoded.readBytes(length: encoded.readableBytes)!
        #expect(bytes.indices.contains { bytes[$0...].starts(with: Self.sample.bytes) })
        #expect(try Frame.decode(ByteBuffer(bytes: bytes)) == frame)
    }
}
