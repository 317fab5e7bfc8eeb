import ArgumentParser
import Foundation

/// `--json` on every `list` command: the same rows as one JSON array (ISO 8601 dates, sorted keys) for scripts.
struct JSONOutputOption: ParsableArguments {
    @Flag(help: "Print the list as a JSON array instead of a table.") var json = false

    func print<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        Swift.print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
