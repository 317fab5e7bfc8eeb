import Foundation

/// The reference system's overall status in fleet form: a word (`healthy`, `warning`, `critical`, `emergency`)
/// and a sentence, for one bot and for the fleet. Pure: the facts come in.
enum HealthAssessment {
    /// The status words, least to most serious.
    enum Word: String, Codable, Comparable, CaseIterable {
        case healthy, warning, critical, emergency
        var rank: Int { Self.allCases.firstIndex(of: self)! }
        static func < (a: Word, b: Word) -> Bool { a.rank < b.rank }
    }

    /// What is known of one bot.
    struct Facts: Equatable {
        var bot: String
        /// online, stale, offline or emergency (as the fleet view computes it).
        var state: String
        var lastSeen: Date?
        var emergencySince: Date?
        /// Firing alerts' rule ids by level.
        var critical: [String] = []
        var warning: [String] = []
        var info: [String] = []
    }

    /// One bot's status and message at `now`.
    static func bot(_ f: Facts, now: Date) -> (Word, String) {
        func list(_ ids: [String]) -> String { ids.sorted().joined(separator: ", ") }
        var parts: [String] = []
        if !f.critical.isEmpty { parts.append("CRITICAL: \(list(f.critical))") }
        if !f.warning.isEmpty { parts.append("WARNING: \(list(f.warning))") }
        if !f.info.isEmpty { parts.append("INFO: \(list(f.info))") }
        let alerts = parts.joined(separator: "; ")
        if f.state == "emergency" {
            let since = f.emergencySince.map { " since \($0.formatted(.iso8601))" } ?? ""
            return (.emergency, "in emergency mode\(since); an operator must resume it" + (alerts.isEmpty ? "" : " (\(alerts))"))
        }
        if !f.critical.isEmpty { return (.critical, alerts) }
        if f.lastSeen == nil { return (.warning, "has never reported" + (alerts.isEmpty ? "" : " (\(alerts))")) }
        // Times, not durations: the message stays the same until something changes (live viewers get it on change).
        let since = f.lastSeen.map { $0.formatted(.iso8601) } ?? "?"
        if f.state == "stale" { return (.warning, "connected but no data since \(since)" + (alerts.isEmpty ? "" : "; \(alerts)")) }
        if f.state == "offline" { return (.warning, "offline, last seen \(since)" + (alerts.isEmpty ? "" : "; \(alerts)")) }
        if !f.warning.isEmpty { return (.warning, alerts) }
        return (.healthy, f.info.isEmpty ? "online, no alerts" : "online; \(alerts)")
    }

    /// The fleet's status: the worst of its bots', and which bots need attention.
    static func fleet(_ bots: [(bot: String, word: Word, message: String)]) -> (Word, String) {
        guard !bots.isEmpty else { return (.healthy, "no bots registered") }
        let worst = bots.map(\.word).max() ?? .healthy
        let attention = bots.filter { $0.word != .healthy }.sorted { ($0.word, $1.bot) > ($1.word, $0.bot) }
        guard !attention.isEmpty else { return (.healthy, "all \(bots.count) bots healthy") }
        let named = attention.prefix(5).map { "\($0.bot) \($0.word.rawValue) (\($0.message))" }.joined(separator: "; ")
        let more = attention.count > 5 ? "; and \(attention.count - 5) more" : ""
        return (worst, "\(attention.count) of \(bots.count) bots need attention: \(named)\(more)")
    }
}
