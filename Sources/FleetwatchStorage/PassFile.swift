import Foundation

/// libpq's password file (`~/.pgpass` or `PGPASSFILE`): lines `hostname:port:database:username:password`, `*`
/// matching anything, `\:` and `\\` escaped, `#` comments; the first matching line wins. Like libpq, a file
/// that group or others may read is ignored.
enum PassFile {
    static func lookup(_ path: String, endpoint: DatabaseURL.Endpoint, database: String, user: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_mode & 0o077 == 0,
              let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let host = endpoint.isSocket ? "localhost" : endpoint.host
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let fields = split(line)
            guard fields.count == 5 else { continue }
            func matches(_ field: String, _ value: String) -> Bool { field == "*" || field == value }
            if matches(fields[0], host), matches(fields[1], String(endpoint.port)), matches(fields[2], database),
               matches(fields[3], user) {
                return fields[4]
            }
        }
        return nil
    }

    /// Splits on unescaped colons, undoing `\:` and `\\`.
    static func split(_ line: Substring) -> [String] {
        var fields: [String] = []
        var current = ""
        var escaped = false
        for ch in line {
            if escaped {
                current.append(ch)
                escaped = false
            } else if ch == "\\" {
                escaped = true
            } else if ch == ":", fields.count < 4 {
                fields.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        fields.append(current)
        return fields
    }
}
