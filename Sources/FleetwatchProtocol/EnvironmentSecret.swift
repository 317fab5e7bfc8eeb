import Foundation

/// A secret given to a process without putting it on its command line (where `ps` shows it): the variable
/// `NAME`, or the contents of the file named by `NAME_FILE` (Docker and Kubernetes secrets). One trailing newline
/// is removed from a file; an empty file, an unreadable file, or both variables set is an error naming them.
public enum EnvironmentSecret {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public static func read(_ name: String, _ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        if let path = environment[name + "_FILE"], !path.isEmpty {
            guard environment[name] == nil else { throw Failure(description: "\(name) and \(name)_FILE are both set: keep one") }
            do {
                return try file(path)
            } catch let f as Failure {
                throw Failure(description: "\(name)_FILE=\(path): \(f.description)")
            }
        }
        return environment[name]
    }

    /// A secret file's contents without one trailing newline.
    public static func file(_ path: String) throws -> String {
        var text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw Failure(description: "cannot read \(path) (\(error.localizedDescription))")
        }
        if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
        guard !text.isEmpty else { throw Failure(description: "\(path) is empty") }
        return text
    }
}
