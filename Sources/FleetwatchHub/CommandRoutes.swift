import FleetwatchProtocol
import FleetwatchControl
import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import Synchronization

/// The emergency-stop API (docs/api.md): stop, resume, command state and step results, the audit log.
/// Public only for its request bodies and their checks (the parsers' fuzz target, `Fuzz/parsers`).
public struct CommandRoutes: Sendable {
    let ledger: CommandLedger
    let audit: AuditLog
    let refusals: RefusalAudit
    let alerts: EmergencyAlerts
    let limiter: RequestLimiter
    let logger: Logger
    /// The stop while the database is unreachable; nil: none (the request gets 503).
    var breakGlass: BreakGlass?

    /// The JSON body of `POST /api/control/emergency-stop` and `POST /api/bots/{bot}/emergency-stop`.
    public struct StopRequest: Decodable, Sendable {
        /// Required by `/api/control/emergency-stop`; ignored (must match if given) on `/api/bots/{bot}/…`.
        public var botID: String?
        /// Another name for `botID` (`bot_id` wins if both are given).
        public var bot: String?
        /// Why; checked with `validatedReason`.
        public var reason: String?
        /// Also liquidate positions (the bot must allow it).
        public var liquidate: Bool?

        enum CodingKeys: String, CodingKey {
            case botID = "bot_id", bot, reason, liquidate
        }
    }

    /// The JSON body of `POST /api/bots/{bot}/resume` (optional).
    public struct ResumeRequest: Decodable, Sendable {
        /// Why; checked with `validatedReason` (default "resumed by USER").
        public var reason: String?
    }

    /// A stop or resume reason as the ledger records it: trimmed of white space and 1–1000 UTF-8 bytes; nil if
    /// it is missing, blank or too long. Pure.
    public static func validatedReason(_ reason: String?) -> String? {
        let trimmed = (reason ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 1000 else { return nil }
        return trimmed
    }

    func register(on router: Router<HubRequestContext>) {
        router.post("/api/bots/:bot/emergency-stop") { request, context -> EditedResponse<CommandRecord> in
            let bot = try context.parameters.require("bot")
            return try await stop(request, context: context, bot: bot)
        }
        router.post("/api/control/emergency-stop") { request, context -> EditedResponse<CommandRecord> in
            try await stop(request, context: context, bot: nil)
        }
        router.post("/api/bots/:bot/resume") { request, context -> EditedResponse<CommandRecord> in
            let bot = try context.parameters.require("bot")
            try await limit(context, bot: bot, action: "resume")
            let body = try await decodeOptional(ResumeRequest.self, request, context) ?? ResumeRequest()
            let reason = try checkedReason(body.reason ?? "resumed by \(context.actor.name)", context: context, bot: bot, action: "resume")
            let outcome = try await ledger.requestResume(bot: bot, actor: context.actor, reason: reason,
                                                         idempotencyKey: try idempotencyKey(request))
            if case .created = outcome { await alerts.resumed(bot: bot, by: context.actor.name) }
            return try await respond(outcome, bot: bot, action: "resume", context: context)
        }
        router.get("/api/bots/:bot/commands") { request, context -> [CommandRecord] in
            let bot = try context.parameters.require("bot")
            let limit = max(1, min(request.uri.queryParameters.get("limit", as: Int.self) ?? 50, 500))
            return try await ledger.commands(bot: bot, limit: limit)
        }
        router.get("/api/commands/:id") { _, context -> CommandRecord in
            guard let id = CommandID(try context.parameters.require("id")) else {
                throw HTTPError(.badRequest, message: "a command id is a UUID")
            }
            // A break-glass command is shown from this replica's journal until the ledger has it.
            if let entry = await breakGlass?.journal.entry(id: id) { return entry.record }
            guard let record = try await ledger.command(id: id) else { throw HTTPError(.notFound, message: "no command \(id)") }
            return record
        }
        router.get("/api/audit") { request, _ -> [AuditLog.Entry] in
            let q = request.uri.queryParameters
            let command = try q.get("command").map { text in
                guard let id = CommandID(text) else { throw HTTPError(.badRequest, message: "command must be a command id (UUID)") }
                return id
            }
            return try await audit.entries(bot: q.get("bot"), commandID: command,
                                           limit: max(1, min(q.get("limit", as: Int.self) ?? 200, 1000)))
        }
    }

    private func stop(_ request: Request, context: HubRequestContext, bot pathBot: String?) async throws -> EditedResponse<CommandRecord> {
        let body = try await decodeOptional(StopRequest.self, request, context) ?? StopRequest()
        let named = body.botID ?? body.bot
        guard let bot = pathBot ?? named else {
            await refusals.refused(context.actor, action: "emergency_stop.refused", detail: "no bot id in the body")
            throw HTTPError(.badRequest, message: "name the bot: {\"bot_id\": \"…\", \"reason\": \"…\"}")
        }
        if let pathBot, let named, named != pathBot {
            await refusals.refused(context.actor, action: "emergency_stop.refused", bot: pathBot,
                               detail: "body names bot \(named)")
            throw HTTPError(.badRequest, message: "the body names bot \(named) but the path names \(pathBot)")
        }
        try await limit(context, bot: bot, action: "emergency_stop")
        let reason = try checkedReason(body.reason, context: context, bot: bot, action: "emergency_stop")
        let key = try idempotencyKey(request)
        let outcome: CommandRequestOutcome
        if let breakGlass {
            // Taken by break glass during an outage and not yet written to the ledger (that happens once the database
            // answers): the same request again is that stop, not a second one under another id.
            if let key, let earlier = await breakGlass.journalled(bot: bot, issuedBy: context.actor.name, reason: reason,
                                                                  idempotencyKey: key) {
                return try await respond(earlier, bot: bot, action: "emergency_stop", context: context)
            }
            let id = CommandID.random()
            let writing = Mutex(false)
            do {
                guard !breakGlass.databaseDown else { throw DatabaseUnavailable(state: breakGlass.health.current) }
                outcome = try await breakGlass.ledgerCall { [ledger, actor = context.actor] in
                    try await ledger.requestStop(bot: bot, actor: actor, origin: .operator, reason: reason,
                                                 liquidate: body.liquidate ?? false, idempotencyKey: key, id: id,
                                                 writing: { writing.withLock { $0 = true } })
                }
            } catch is DatabaseUnavailable {
                // Break glass: this replica journals the stop and sends it to the bot itself, under the id the ledger
                // call had (should its statement still commit, the two are one command).
                do {
                    outcome = try await breakGlass.stop(bot: bot, actor: context.actor, origin: .operator, reason: reason,
                                                        liquidate: body.liquidate ?? false, idempotencyKey: key, id: id)
                } catch var refused as HTTPError where writing.withLock({ $0 }) {
                    // Given up on while its statement was under way: it may be in the ledger all the same.
                    refused.body = (refused.body ?? "") + Self.mayBeRecorded(id)
                    throw refused
                }
                return try await respond(outcome, bot: bot, action: "emergency_stop", context: context)
            }
        } else {
            outcome = try await ledger.requestStop(bot: bot, actor: context.actor, origin: .operator, reason: reason,
                                                   liquidate: body.liquidate ?? false, idempotencyKey: key)
        }
        if case .created(let record) = outcome { await alerts.latched(record) }
        return try await respond(outcome, bot: bot, action: "emergency_stop", context: context)
    }

    /// What a stop refused by break glass adds when its ledger call was given up on while writing it.
    static func mayBeRecorded(_ id: CommandID) -> String {
        ". The database stopped answering while this stop was being written, so it may be recorded all the same: once "
            + "the database answers, GET /api/commands/\(id) says (404: it was not)"
    }

    /// Stops and resumes are limited per API token (`emergency.requests_per_minute`); the excess gets 429 and
    /// an audit row.
    private func limit(_ context: HubRequestContext, bot: String, action: String) async throws {
        guard await limiter.allow(context.actor.name) else {
            await refusals.refused(context.actor, action: action + ".refused", bot: bot, detail: "rate limited")
            throw HTTPError(.tooManyRequests, headers: [.retryAfter: "60"],
                            message: "too many stop/resume requests from \(context.actor.name); wait a minute")
        }
    }

    private func checkedReason(_ reason: String?, context: HubRequestContext, bot: String, action: String) throws -> String {
        guard let trimmed = Self.validatedReason(reason) else {
            Task { await refusals.refused(context.actor, action: action + ".refused", bot: bot, detail: "missing or too long reason") }
            throw HTTPError(.badRequest, message: "give a reason (1–1000 bytes): it is recorded in the ledger and shown to the bot")
        }
        return trimmed
    }

    private func idempotencyKey(_ request: Request) throws -> String? {
        guard let key = request.headers[.init("Idempotency-Key")!] else { return nil }
        guard !key.isEmpty, key.utf8.count <= 200 else { throw HTTPError(.badRequest, message: "Idempotency-Key must be 1–200 bytes") }
        return key
    }

    private func respond(_ outcome: CommandRequestOutcome, bot: String, action: String, context: HubRequestContext) async throws -> EditedResponse<CommandRecord> {
        func refuse(_ status: HTTPResponse.Status, _ message: String) async throws -> EditedResponse<CommandRecord> {
            await refusals.refused(context.actor, action: action + ".refused", bot: bot, detail: message)
            throw HTTPError(status, message: message)
        }
        switch outcome {
        case .created(let record):
            return EditedResponse(status: .accepted, headers: [.location: "/api/commands/\(record.id)"], response: record)
        case .existing(let record):
            return EditedResponse(status: .ok, headers: [.location: "/api/commands/\(record.id)"], response: record)
        case .idempotencyConflict:
            return try await refuse(.unprocessableContent, "this Idempotency-Key was used for a different request")
        case .unknownBot:
            return try await refuse(.notFound, "no bot named \(bot)")
        case .liquidationNotAllowed:
            return try await refuse(.conflict, "liquidation is not allowed for bot \(bot); allow it with 'monitor-hub bots liquidation \(bot) on'")
        case .notInEmergency:
            return try await refuse(.conflict, "bot \(bot) is not in emergency mode")
        case .alreadyInEmergency:
            return try await refuse(.conflict, "bot \(bot) is already in emergency mode")
        }
    }


    private func decodeOptional<T: Decodable>(_ type: T.Type, _ request: Request, _ context: HubRequestContext) async throws -> T? {
        var request = request
        let body = try await request.collectBody(upTo: 64 * 1024)
        guard body.readableBytes > 0 else { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch {
            throw HTTPError(.badRequest, message: "the body is not valid JSON for this request: \(error)")
        }
    }
}

extension CommandRecord: ResponseEncodable {}
extension AuditLog.Entry: ResponseEncodable {}
