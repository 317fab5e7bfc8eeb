/// Changes to a profile's rules, as a configuration file, a stored profile or a per-bot override gives them:
/// limits (`rule_id`), hysteresis (`rule_id.hysteresis`) and levels (`rule_id.level`: INFO, WARNING, CRITICAL).
public struct ThresholdSettings: Sendable, Equatable, Codable {
    /// `rule_id` → limit, `rule_id.hysteresis` → hysteresis.
    public var limits: [String: Double]
    /// `rule_id` → level.
    public var levels: [String: AlertLevel]

    public init(limits: [String: Double] = [:], levels: [String: AlertLevel] = [:]) {
        self.limits = limits
        self.levels = levels
    }

    public var isEmpty: Bool { limits.isEmpty && levels.isEmpty }

    /// Suffix of a key that sets a rule's level.
    public static let levelSuffix = ".level"

    /// Splits a mixed map (numbers for limits, level names for `rule_id.level` keys) as files and the API
    /// send it. Throws a message naming the first key whose value does not fit.
    public static func parse(_ raw: [String: ThresholdValue]) throws -> ThresholdSettings {
        var out = ThresholdSettings()
        for (key, value) in raw {
            if key.hasSuffix(levelSuffix) {
                let id = String(key.dropLast(levelSuffix.count))
                guard case .text(let name) = value, let level = AlertLevel(rawValue: name.uppercased()) else {
                    throw ThresholdError("\(key) must be \"INFO\", \"WARNING\" or \"CRITICAL\"")
                }
                out.levels[id] = level
            } else {
                guard case .number(let v) = value, v.isFinite else { throw ThresholdError("\(key) must be a number") }
                out.limits[key] = v
            }
        }
        return out
    }

    /// The keys of these settings that name no rule of `profile`.
    public func unknownKeys(for profile: ThresholdProfile = .standard) -> [String] {
        let limitKeys = profile.overriding(limits).unknown
        let levelKeys = levels.keys.filter { profile.rule($0) == nil }.map { $0 + Self.levelSuffix }
        return (limitKeys + levelKeys).sorted()
    }
}

/// A value of a thresholds map: a number (a limit) or a string (a level).
public enum ThresholdValue: Sendable, Equatable, Codable {
    case number(Double)
    case text(String)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Double.self) { self = .number(v) } else { self = .text(try c.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let v): try c.encode(v)
        case .text(let s): try c.encode(s)
        }
    }
}

/// A thresholds map that cannot be used, with the reason.
public struct ThresholdError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension ThresholdProfile {
    /// This profile with `settings` applied (limits, hysteresis, levels); unknown keys are ignored (check them
    /// with `ThresholdSettings.unknownKeys` first).
    public func applying(_ settings: ThresholdSettings) -> ThresholdProfile {
        var copy = overriding(settings.limits).profile
        for (id, level) in settings.levels {
            if let i = copy.rules.firstIndex(where: { $0.id == id }) { copy.rules[i].level = level }
        }
        return copy
    }
}

/// Where a rule's limit or level comes from, for the API and the bot page.
public enum ThresholdSource: String, Sendable, Codable, Equatable {
    /// The fleet's default profile (the bot has no profile of its own).
    case fleetDefault = "fleet default"
    /// The profile the bot was given.
    case profile
    /// An override set for this bot.
    case botOverride = "bot override"
}
