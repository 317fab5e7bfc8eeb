import ArgumentParser
import FleetwatchHub
import FleetwatchStorage
import Foundation
import Logging

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reports from the review data.", subcommands: [Weekly.self])

    struct Weekly: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The fleet's week at a glance: bots ranked by PnL, with their alerts and emergency stops.")
        @OptionGroup var common: CommonOptions
        @Option(help: "ISO week, e.g. 2026-W47 (default: last week).") var week: String?
        @Option(help: "Only this bot.") var bot: String?
        @Option(help: "table (for people), csv (for spreadsheets) or json (for programs).") var format: Format = .table

        enum Format: String, CaseIterable, ExpressibleByArgument { case table, csv, json }

        func run() async throws {
            let report = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .weeklyReport(week: week, bot: bot)
            print(ReportFormatter.render(report, format: format.rawValue), terminator: "")
        }
    }
}

struct Rollup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recompute rollups for a time range (after a long outage or an import); the hub does the newest minutes itself.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Start, ISO 8601 (e.g. 2026-11-20T00:00:00Z).") var from: String
    @Option(help: "End, ISO 8601 (default: now).") var to: String?

    func run() async throws {
        let iso = ISO8601DateFormatter()
        guard let start = iso.date(from: from) else { throw ValidationError("--from must be ISO 8601, e.g. 2026-11-20T00:00:00Z") }
        let end = try to.map { s -> Date in
            guard let d = iso.date(from: s) else { throw ValidationError("--to must be ISO 8601") }
            return d
        } ?? Date()
        let buckets = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
            .rollup(from: start, to: end) { done, days, buckets in
                // Progress on standard error, one line per day: the result line stays alone on standard output.
                FileHandle.standardError.write(Data("rollup: day \(done) of \(days), \(buckets) one-minute buckets so far\n".utf8))
            }
        print("recomputed \(buckets) one-minute buckets (and their hours) from \(iso.string(from: start)) to \(iso.string(from: end))")
    }
}

struct Analysts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read-only PostgreSQL logins for analysts (role fleetwatch_analyst).", subcommands: [Add.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a read-only login and print its password (shown once).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The login name (letters, digits, _).") var name: String
        @Option(help: "Take the password from this file's first line (at least 16 characters) instead of generating one; an analyst login of this name that exists gets it (safe to run at every deployment).")
        var passwordFile: String?

        func run() async throws {
            let given = try passwordFile.map { path -> String in
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read --password-file \(path)") }
                return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
            }
            let (password, created) = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .addAnalyst(name, password: given)
            if given != nil {
                print("read-only login \(name) \(created ? "created" : "exists; its password set") (member of fleetwatch_analyst), password from \(passwordFile!)")
                return
            }
            print("read-only login \(name) created (member of fleetwatch_analyst). Its password (shown only now):")
            print(password)
        }
    }
}

/// Renders a weekly report as an aligned table, CSV or JSON.
enum ReportFormatter {
    static let columns = ["rank", "bot", "week_pnl", "total_pnl", "trades", "success_%", "max_drawdown", "api_err_%",
                          "nonce_fail", "ws_reconn", "peak_mem_mb", "uptime_%", "crit", "warn", "info", "stops"]

    static func cells(_ r: WeeklyReview.Row, rank: Int) -> [String] {
        func n(_ v: Double?, _ digits: Int = 2) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "" }
        return ["\(rank)", r.bot, n(r.weekPnl), n(r.totalPnl), n(r.tradesExecuted, 0), n(r.successRatePercent), n(r.maxDrawdown),
                n(r.apiErrorRatePercent, 3), n(r.nonceFailures, 0), n(r.websocketReconnects, 0), n(r.peakMemoryMb, 1),
                n(r.uptimePercent, 1), "\(r.alertsCritical)", "\(r.alertsWarning)", "\(r.alertsInfo)", "\(r.emergencyStops)"]
    }

    static func render(_ report: WeeklyReview.Report, format: String) -> String {
        let rows = report.bots.enumerated().map { cells($1, rank: $0 + 1) }
        switch format {
        case "json":
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            return String(decoding: (try? encoder.encode(report)) ?? Data(), as: UTF8.self) + "\n"
        case "csv":
            func field(_ s: String) -> String {
                s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
            }
            return ([columns] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
        default:
            let widths = columns.indices.map { i in ([columns] + rows).map { $0[i].count }.max() ?? 0 }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { i, c in i <= 1 ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                                                    : String(repeating: " ", count: widths[i] - c.count) + c }
                    .joined(separator: "  ")
            }
            var out = "fleetwatch weekly review \(report.week) (from \(ISO8601DateFormatter().string(from: report.weekStart)), UTC)\n"
            out += String(format: "fleet: PnL %.2f over %d bots, %.0f trades", report.fleetPnl, report.bots.count, report.fleetTrades)
            if let s = report.fleetSuccessRatePercent { out += String(format: ", success %.2f %%", s) }
            out += ", alerts \(report.alertsCritical) critical / \(report.alertsWarning) warning / \(report.alertsInfo) info"
            out += ", emergency stops \(report.emergencyStops)\n\n"
            out += line(columns) + "\n" + rows.map(line).joined(separator: "\n") + "\n"
            return out
        }
    }
}
