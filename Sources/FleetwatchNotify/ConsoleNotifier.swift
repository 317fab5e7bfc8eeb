import FleetwatchAlerting
import Foundation
import Logging

/// Alerts on standard error, one line each, colored by level when standard error is a terminal.
public struct ConsoleNotifier: Notifier {
    public let name = "console"
    public let minimumLevel: AlertLevel
    let colored: Bool

    public init(minimumLevel: AlertLevel = .info) {
        self.minimumLevel = minimumLevel
        self.colored = isatty(2) != 0
    }

    public func notify(_ event: AlertEvent) async throws {
        let color: String
        switch (event.kind, event.level) {
        case (.resolved, _): color = "\u{1B}[32m"
        case (_, .critical): color = "\u{1B}[1;31m"
        case (_, .warning): color = "\u{1B}[33m"
        case (_, .info): color = "\u{1B}[36m"
        }
        let line = colored ? "\(color)\(event.headline)\u{1B}[0m\n" : "\(event.headline)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// Alerts in the hub's log (swift-log), at a log level matching the alert's.
public struct LogNotifier: Notifier {
    public let name = "log"
    public let minimumLevel: AlertLevel
    let logger: Logger

    public init(minimumLevel: AlertLevel = .info, logger: Logger) {
        self.minimumLevel = minimumLevel
        self.logger = logger
    }

    public func notify(_ event: AlertEvent) async throws {
        let level: Logger.Level = event.kind == .resolved ? .notice : (event.level == .critical ? .critical : event.level == .warning ? .warning : .info)
        logger.log(level: level, "alert \(event.alertID) \(event.kind.rawValue): \(event.headline)",
                   metadata: ["bot": "\(event.bot)", "rule": "\(event.ruleID)"])
    }
}
