import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Keeps daily `samples` partitions ready: from `behindDays` ago (the oldest day a sample may be
/// accepted for) to `aheadDays` ahead. Runs at start and every hour; safe on several replicas at once.
public struct PartitionMaintainer: Service {
    let client: any PostgresQuerying
    let logger: Logger
    var behindDays = 8
    var aheadDays = 7

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Creates the partition holding `date` unless it exists.
    public func ensure(dayOf date: Date) async throws {
        let day = Self.utcDay(date)
        try await client.query("SELECT fleetwatch_ensure_sample_partition(\(day)::date)", logger: logger)
    }

    /// Creates every partition of the window around now.
    public func ensureWindow(now: Date = Date()) async throws {
        for offset in -behindDays...aheadDays {
            try await ensure(dayOf: now.addingTimeInterval(Double(offset) * 86_400))
        }
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    do {
                        try await ensureWindow()
                    } catch is CancellationError {
                        throw CancellationError()
                    } catch {
                        logger.error("could not create sample partitions: \(String(reflecting: error))")
                    }
                    try await Task.sleep(for: .seconds(3600))
                }
            }
        } catch is CancellationError {
            return
        }
    }

    static func utcDay(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }
}
