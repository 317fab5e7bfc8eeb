import FleetwatchProtocol

/// One value a collector reports.
public struct CollectedValue: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case number(Double)
        case state(String)
    }
    public var name: String
    public var kind: MetricKind
    public var value: Value

    public init(name: String, kind: MetricKind = .gauge, value: Value) {
        self.name = name
        self.kind = kind
        self.value = value
    }

    /// A gauge reading.
    public static func gauge(_ name: String, _ value: Double) -> CollectedValue {
        CollectedValue(name: name, kind: .gauge, value: .number(value))
    }

    /// A string state.
    public static func state(_ name: String, _ value: String) -> CollectedValue {
        CollectedValue(name: name, kind: .state, value: .state(value))
    }
}

/// Something the agent polls at each flush for extra metrics (the reference system's `CustomCollector`).
///
/// A collector that throws, or does not answer within the agent's collector timeout, is skipped for that
/// flush and never delays the other collectors or the bot.
public protocol MetricCollector: Sendable {
    /// A name for logs.
    var name: String { get }
    /// Reads the current values.
    func collect() async throws -> [CollectedValue]
}

/// A collector made from a closure.
public struct ClosureCollector: MetricCollector {
    public let name: String
    let body: @Sendable () async throws -> [CollectedValue]

    public init(name: String, _ body: @escaping @Sendable () async throws -> [CollectedValue]) {
        self.name = name
        self.body = body
    }

    public func collect() async throws -> [CollectedValue] { try await body() }
}
