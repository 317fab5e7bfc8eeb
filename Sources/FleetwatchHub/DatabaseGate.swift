import FleetwatchStorage
import Foundation
import Hummingbird

/// While PostgreSQL is known to be unreachable (`DatabaseHealth`), API and sign-in requests get 503 at once —
/// naming the problem and since when — instead of waiting for a pool that cannot connect; a request already
/// waiting when the database goes down gets the same answer as soon as it is noticed (its wait is cancelled).
struct DatabaseGate: RouterMiddleware {
    typealias Context = HubRequestContext
    let health: DatabaseHealth

    struct DatabaseDown: Error {}

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.needsDatabase(request.uri.path), !Self.breaksGlass(request) else { return try await next(request, context) }
        if case .down(let since, _) = health.current { throw Self.unavailable(since: since) }
        do {
            // The route in a child task, racing the health probe: if the database goes down first, the route is
            // cancelled (a pool wait ends at once; a query on a dead connection fails by itself). The chain does not
            // outlive this call: the group waits for its children.
            return try await withoutActuallyEscaping(next) { next in
                nonisolated(unsafe) let next = next
                return try await withThrowingTaskGroup(of: Response.self) { group in
                    group.addTask { try await next(request, context) }
                    group.addTask { [health] in
                        await health.untilDown()
                        try Task.checkCancellation()
                        throw DatabaseDown()
                    }
                    defer { group.cancelAll() }
                    return try await group.next()!
                }
            }
        } catch is DatabaseDown {
            if case .down(let since, _) = health.current { throw Self.unavailable(since: since) }
            throw Self.unavailable(since: Date())
        }
    }

    static func unavailable(since: Date) -> HTTPError {
        let seconds = max(0, Int(Date().timeIntervalSince(since).rounded()))
        return HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"],
                         message: "the database is unreachable (for \(seconds) s); this replica keeps trying — retry shortly")
    }

    /// The emergency stop and reading a command's state work without the database (`BreakGlass`).
    static func breaksGlass(_ request: Request) -> Bool {
        let parts = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        switch (request.method, parts.count) {
        case (.post, 4): return parts[0] == "api" && parts[1] == "bots" && parts[3] == "emergency-stop"
        case (.post, 3): return parts[0] == "api" && parts[1] == "control" && parts[2] == "emergency-stop"
        case (.get, 3): return parts[0] == "api" && parts[1] == "commands"
        default: return false
        }
    }

    static func needsDatabase(_ path: String) -> Bool {
        let first = path.split(separator: "/", omittingEmptySubsequences: true).first
        return first == "api" || first == "auth"
    }
}
