import FleetwatchStorage
import FleetwatchProtocol
import Foundation
import ServiceLifecycle

/// Writes refused attempts to the audit log without letting a flood of them grow it. Refusals are grouped by
/// kind — actor, role, address (port ignored) and reason: the first of a kind in a minute is written at once,
/// the rest of that minute are counted and written as one row with `repeats` set when the minute ends. At most
/// `newKindsPerMinute` kinds start a minute; refusals of further kinds are counted under one "many sources"
/// row. So a flood writes at most about 2 × `newKindsPerMinute` + 1 rows a minute, and holds at most that many
/// kinds in memory. Runs as a service (the minute's flush). When the hub stops, it writes what it counted at
/// once (it is the first service to stop, so a stop that runs into a kill loses no counts), and refusals that
/// still arrive while connections drain are written one row each.
actor RefusalAudit: Service {
    private struct Pending {
        var actor: Actor
        var action: String
        var bot: String?
        var detail: String
        var count = 0
        var windowStartMs: Int64
    }

    private let audit: AuditLog
    private let window: Duration
    private let windowMs: Int64
    private let newKindsPerMinute: Int
    private let clock: any MillisecondClock
    private var pending: [String: Pending] = [:]
    private var started: [Int64] = []
    private var stopped = false

    init(audit: AuditLog, window: Duration = .seconds(60), newKindsPerMinute: Int = 60,
         clock: any MillisecondClock = SystemClock.monotonic) {
        self.audit = audit
        self.window = window
        self.windowMs = window.wholeMilliseconds
        self.clock = clock
        self.newKindsPerMinute = newKindsPerMinute
    }

    /// A refused attempt by `actor` (its remote's port is ignored when grouping).
    func refused(_ actor: Actor, action: String, bot: String? = nil, detail: String) async {
        guard !stopped else {
            await audit.record(actor, action: action, outcome: "refused", bot: bot, detail: detail)
            return
        }
        let address = Self.address(actor.remote)
        let key = [String(actor.name.prefix(64)), actor.kind.rawValue, address, detail].joined(separator: "\u{1F}")
        let now = clock.nowMs
        if var entry = pending[key], now - entry.windowStartMs < windowMs {
            entry.count += 1
            entry.bot = bot ?? entry.bot
            entry.action = action
            pending[key] = entry
            return
        }
        started.removeAll { now - $0 >= windowMs }
        guard started.count < newKindsPerMinute else {
            var entry = pending["overflow"] ?? Pending(actor: Actor(name: "many sources", kind: .anonymous, remote: nil),
                                                       action: "refused", detail: "", windowStartMs: now)
            entry.count += 1
            entry.detail = "refused attempts of more than \(newKindsPerMinute) kinds in a minute; last: \(action) by \(actor.name.prefix(64)) from \(address): \(detail)"
            pending["overflow"] = entry
            return
        }
        started.append(now)
        // State changes happen before any await: refusals arriving while a row is written (actor reentrancy)
        // see the new minute's entry and are counted in it.
        let old = pending.updateValue(Pending(actor: actor, action: action, bot: bot, detail: detail, windowStartMs: now), forKey: key)
        if let old, old.count > 0 { await write(old) }
        await audit.record(actor, action: action, outcome: "refused", bot: bot, detail: detail)
    }

    /// Writes the counted refusals of every minute that has ended and forgets quiet kinds.
    func flush(force: Bool = false) async {
        let now = clock.nowMs
        let due = pending.filter { force || now - $0.value.windowStartMs >= windowMs }
        for key in due.keys { pending[key] = nil }   // before writing: see `refused`
        for entry in due.values where entry.count > 0 { await write(entry) }
    }

    /// Kinds held now (tests check the bound).
    var keyCount: Int { pending.count }

    func run() async throws {
        // Only the wait is cut short by the shutdown: a write in progress is never cancelled (its minute's
        // counts are already out of `pending`, and would be lost).
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.window / 4) }
            if Task.isShuttingDownGracefully || Task.isCancelled { break }
            await flush()
        }
        stopped = true
        // Written even if the group is being cancelled: an unstructured task does not inherit the cancellation.
        await Task { await self.flush(force: true) }.value
    }

    private func write(_ entry: Pending) async {
        await audit.record(entry.actor, action: entry.action, outcome: "refused", bot: entry.bot,
                           detail: "\(entry.detail) (\(entry.count) more like this within a minute)", repeats: entry.count)
    }

    /// `ip:port` without the port; anything else unchanged.
    static func address(_ remote: String?) -> String {
        guard let remote else { return "" }
        guard let colon = remote.lastIndex(of: ":"), Int(remote[remote.index(after: colon)...]) != nil else { return remote }
        return String(remote[..<colon])
    }
}
