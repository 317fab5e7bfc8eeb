import Foundation
import Testing

/// docs/openapi.yaml describes every route the hub registers: each `router.get/post/put/delete("…")` in
/// Sources/FleetwatchHub (`:param` as `{param}`) must be a path of the document.
struct OpenAPICoverageTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func registeredRoutes() throws -> Set<String> {
        let dir = root.appendingPathComponent("Sources/FleetwatchHub")
        let files = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL }
            .filter { $0.pathExtension == "swift" } ?? []
        let pattern = /router\.(get|post|put|delete|patch)\(\"([^\"]+)\"/
        var routes: Set<String> = []
        for file in files {
            for match in try String(contentsOf: file, encoding: .utf8).matches(of: pattern) {
                let path = String(match.2).split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
                routes.insert("/" + path.joined(separator: "/"))
            }
        }
        return routes
    }

    @Test func everyRouteIsDocumented() throws {
        let yaml = try String(contentsOf: Self.root.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        let documented = Set(yaml.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("  /"), line.hasSuffix(":") else { return nil }
            return String(line.dropFirst(2).dropLast()).trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
        })
        let routes = try Self.registeredRoutes()
        #expect(routes.count > 30, "found only \(routes.sorted())")
        let missing = routes.subtracting(documented)
        #expect(missing.isEmpty, "routes missing from docs/openapi.yaml: \(missing.sorted())")
    }

    /// A plain (unquoted) YAML scalar may not hold ": " or " #": the document stopped being valid YAML once (a
    /// description quoting "CRITICAL: …"), which every OpenAPI tool refuses. Quote such values or use a block.
    @Test func plainScalarsStayValidYAML() throws {
        let yaml = try String(contentsOf: Self.root.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        var bad: [String] = []
        var blockIndent: Int?   // inside a block scalar (`key: |`): lines indented deeper than its key are text
        for (n, line) in yaml.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let indent = line.prefix { $0 == " " }.count
            if let b = blockIndent {
                if line.allSatisfy({ $0 == " " }) || indent > b { continue }
                blockIndent = nil
            }
            if line.hasSuffix(": |") || line.hasSuffix(": >") || line.hasSuffix(": |-") || line.hasSuffix(": >-") {
                blockIndent = indent
                continue
            }
            let trimmed = line.drop { $0 == " " || $0 == "-" }.drop { $0 == " " }
            guard let colon = trimmed.range(of: ": "), !trimmed.hasPrefix("#") else { continue }
            let value = trimmed[colon.upperBound...]
            guard let first = value.first, !"\"'|>[{&*!".contains(first) else { continue }
            if value.contains(": ") || value.contains(" #") { bad.append("line \(n + 1): \(line)") }
        }
        #expect(bad.isEmpty, "plain scalars that are not valid YAML:\n\(bad.joined(separator: "\n"))")
    }
}
