import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// What an API client learns when something below the route fails: a sentence about the problem and a
/// reference to the hub's log line — never SQL, a connection string or internal types. A database that cannot be
/// reached, or a query that outran `hub.statement_timeout` (PostgreSQL cancels it), is 503 (try again); anything
/// else 500. The full error goes to the log with the same reference.
struct APIErrors<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPResponseError {
            throw error
        } catch {
            let reference = Self.reference()
            logger.error("\(request.method) \(request.uri.path) [\(reference)]: \(String(reflecting: error))")
            throw Self.publicError(error, reference: reference)
        }
    }

    /// The client's view of `error`.
    static func publicError(_ error: any Error, reference: String) -> HTTPError {
        if let p = error as? PSQLError {
            switch p.code {
            case .server where p.serverInfo?[.sqlState] == "57014":
                return HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"],
                                 message: "the database did not answer in time (hub.statement_timeout); try again (ref \(reference))")
            case .server:
                return HTTPError(.internalServerError, message: "the database refused the request; the hub's log has the details (ref \(reference))")
            default:
                return HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"],
                                 message: "the database is unreachable; try again shortly (ref \(reference))")
            }
        }
        if error is QueryUnanswered || error is StatementAbandoned {
            return HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"],
                             message: "the database did not answer in time; try again (ref \(reference))")
        }
        if error is StorageError {
            return HTTPError(.internalServerError, message: "the request could not be stored; the hub's log has the details (ref \(reference))")
        }
        return HTTPError(.internalServerError, message: "internal error; the hub's log has the details (ref \(reference))")
    }

    /// A short id tying a client's error to the hub's log line.
    static func reference() -> String {
        String(UInt64.random(in: 0...UInt64.max) & 0xFF_FFFF_FFFF, radix: 36)
    }
}
