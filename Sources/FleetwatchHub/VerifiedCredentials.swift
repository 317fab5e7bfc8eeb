import Crypto
import FleetwatchStorage
import Foundation
import Synchronization

/// API tokens and dashboard sessions this replica verified against PostgreSQL recently, for the one thing that
/// must work while the database is unreachable: the break-glass emergency stop. Only digests are kept, in
/// memory; an entry older than `maxAge` (`hub.outage_credentials_max_age`) is never used, and a revoked token
/// or ended session stops working here as soon as the database answers again.
final class VerifiedCredentials: Sendable {
    struct Entry: Sendable {
        var principal: AccessTokens.Principal
        var session: Sessions.Session?
        var verifiedAt: ContinuousClock.Instant
    }
    let maxAge: Duration
    private let entries = Mutex<[Data: Entry]>([:])
    static let maxEntries = 10_000

    init(maxAge: Duration) { self.maxAge = maxAge }

    static func key(_ kind: String, _ secret: String) -> Data { Data(SHA256.hash(data: Data((kind + ":" + secret).utf8))) }

    func remember(_ kind: String, _ secret: String, principal: AccessTokens.Principal, session: Sessions.Session? = nil) {
        guard maxAge > .zero else { return }
        let now = ContinuousClock.now
        entries.withLock { e in
            if e.count >= Self.maxEntries { e = e.filter { now - $0.value.verifiedAt <= maxAge } }
            if e.count < Self.maxEntries { e[Self.key(kind, secret)] = Entry(principal: principal, session: session, verifiedAt: now) }
        }
    }

    func forget(_ kind: String, _ secret: String) {
        _ = entries.withLock { $0.removeValue(forKey: Self.key(kind, secret)) }
    }

    /// The entry for `secret` if it was verified within `maxAge`.
    func recent(_ kind: String, _ secret: String) -> Entry? {
        let now = ContinuousClock.now
        return entries.withLock { $0[Self.key(kind, secret)] }.flatMap { now - $0.verifiedAt <= maxAge ? $0 : nil }
    }
}
