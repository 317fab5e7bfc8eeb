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
}
