import Foundation

/// The Grafana dashboards shipped in deploy/grafana/dashboards, read as JSON.
public enum GrafanaDashboards {
    /// deploy/grafana/dashboards of this checkout.
    public static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("deploy/grafana/dashboards").path

    /// Every string under one of `keys` anywhere in a dashboard's JSON, with where it was found.
    public static func strings(in path: String, keys: Set<String>) throws -> [(String, String)] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        var found: [(String, String)] = []
        func walk(_ value: Any, _ at: String) {
            if let object = value as? [String: Any] {
                let here = (object["title"] as? String).map { "\(at) › \($0)" } ?? (object["name"] as? String).map { "\(at) › \($0)" } ?? at
                for (key, child) in object {
                    if keys.contains(key), let text = child as? String, !text.isEmpty { found.append((here, text)) } else { walk(child, here) }
                }
            } else if let array = value as? [Any] {
                for child in array { walk(child, at) }
            }
        }
        walk(json, (path as NSString).lastPathComponent)
        return found
    }
}
