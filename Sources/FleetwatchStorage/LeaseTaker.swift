import FleetwatchControl
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Lets hellos in, in groups: one statement (one commit) for up to `maxGroup` hellos that wait together. Each hello's
/// lease move sends a notification (every replica closes the bot's older connections), and PostgreSQL lets only one
/// transaction with notifications commit at a time: when a restarted hub's whole fleet connects in the same
/// seconds, a statement per hello queued on that lock for longer than the agents wait for an answer (10 s), and
/// they reconnected in waves. A group holds the lock once, and its notifications keep the commit order.
///
/// An idle hub lets a hello in at once; while a statement runs, new hellos queue and form the next group. A bot's
/// hellos go one at a time, in order (its second hello must see the first one's lease). A group PostgreSQL
/// refuses for one hello's data is tried again one hello at a time, so one bot's hello never fails another's.
public actor LeaseTaker {
    /// Most hellos one statement lets in.
    public static let defaultGroup = 256
    /// Most statements at a time (the notification lock lets one commit at a time anyway).
    public static let defaultConcurrent = 2

    /// One hello.
    struct Request: Sendable {
        var bot: String
        /// SHA-256 of the presented token (`BotToken.hash`).
        var tokenHash: [UInt8]
        var connectionID: UUID
        var epoch: Int64
        var agentVersion: String
        /// The replica taking the lease.
        var hub: String
    }

    /// What a hello found: nil if no bot has the name.
    struct Lease: Sendable, Equatable {
        var botID: Int32
        var hasToken: Bool
        /// The token matched: the lease is this connection's now.
        var taken: Bool
        var oldConnection: UUID?
        var oldHub: String?
        /// The epoch's stored sequence, in the statement's snapshot: a batch an older connection commits while this
        /// statement waits for the bot's row may be missing. The agent then sends it again and it is answered as a
        /// duplicate (the ledger's high-water mark): the lower figure costs a resend, never a copy.
        var stored: Int64
        /// Open commands or a latched emergency stop to be sent on connect.
        var commandsWaiting: Bool
        /// The number of this lease move (`bots.lease_order`, from the sequence `lease_moves`), 0 when not taken:
        /// a lease-move notification closes only the bot's connections with a lower number.
        var order: Int64 = 0
    }

    private struct Item {
        let request: Request
        let continuation: CheckedContinuation<Lease?, any Error>
    }

    private let client: any PostgresQuerying
    private let logger: Logger
    private let maxGroup: Int
    private let maxConcurrent: Int
    /// Hellos for the next statements, at most one per bot.
    private var waiting = CircularBuffer<Item>()
    /// A bot's further hellos, each let into `waiting` when the one before has been answered: a bot that opens
    /// connections by the thousand goes one hello per statement and never holds up the others' hellos.
    private var later: [String: CircularBuffer<Item>] = [:]
    /// Bots with a hello waiting or in a running statement.
    private var busy = Set<String>()
    private var running = 0
    /// Statements run (for tests: hellos that waited together share one).
    private(set) var statements = 0
    /// Hellos waiting for a statement (for tests).
    var queued: Int { waiting.count + later.values.reduce(0) { $0 + $1.count } }

    init(client: any PostgresQuerying, logger: Logger, maxGroup: Int = defaultGroup, maxConcurrent: Int = defaultConcurrent) {
        self.client = client
        self.logger = logger
        self.maxGroup = maxGroup
        self.maxConcurrent = maxConcurrent
    }

    func take(_ request: Request) async throws -> Lease? {
        try await withCheckedThrowingContinuation { continuation in
            let item = Item(request: request, continuation: continuation)
            if busy.insert(request.bot).inserted { waiting.append(item) } else { later[request.bot, default: []].append(item) }
            startIfIdle()
        }
    }

    private func startIfIdle() {
        while running < maxConcurrent, !waiting.isEmpty {
            running += 1
            let group = takeGroup()
            Task { await self.run(group) }
        }
    }

    /// The oldest waiting hellos (one per bot by construction).
    private func takeGroup() -> [Item] {
        var group: [Item] = []
        group.reserveCapacity(min(maxGroup, waiting.count))
        while group.count < maxGroup, let item = waiting.popFirst() { group.append(item) }
        return group
    }

    /// Each answered bot's next hello, if any, joins the waiting ones.
    private func answered(_ group: [Item]) {
        for item in group {
            let bot = item.request.bot
            if var next = later[bot], let item = next.popFirst() {
                waiting.append(item)
                later[bot] = next.isEmpty ? nil : next
            } else {
                busy.remove(bot)
            }
        }
    }

    private func run(_ group: [Item]) async {
        do {
            let leases = try await statement(group.map(\.request))
            for (item, lease) in zip(group, leases) { item.continuation.resume(returning: lease) }
        } catch let error as PSQLError where group.count > 1 && BatchWriter.isBatchSpecific(error) {
            // One hello's data broke the statement: each alone, so only that one fails.
            for item in group {
                do { item.continuation.resume(returning: try await statement([item.request])[0]) } catch {
                    item.continuation.resume(throwing: error)
                }
            }
        } catch {
            for item in group { item.continuation.resume(throwing: error) }
        }
        answered(group)
        running -= 1
        startIfIdle()
    }

    /// The hellos' token checks, lease moves and starting points in one statement; one lease (or nil) per request,
    /// in order. Tokens are checked by comparing SHA-256 digests; a wrong token locks and changes nothing. Rows are
    /// locked in bot order, as the batch statements lock them, so two statements wait for each other instead of
    /// deadlocking (and a deadlock all the same is tried again).
    private func statement(_ requests: [Request]) async throws -> [Lease?] {
        statements += 1
        let names = requests.map(\.bot)
        let hashes = requests.map { $0.tokenHash.map { String(format: "%02x", $0) }.joined() }
        let connections = requests.map(\.connectionID.uuidString)
        let epochs = requests.map(\.epoch)
        let versions = requests.map(\.agentVersion)
        let hubs = requests.map(\.hub)
        let open = CommandState.open.map(\.rawValue)
        let rows = try await BatchWriter.retryingConflicts(logger: logger) { [client, logger] in
            var rows: [(Int64, Int32?, Bool?, Bool, UUID?, String?, Int64, Bool, Int64, Int64)] = []
            for try await row in try await client.query("""
                WITH input AS (
                    SELECT * FROM unnest(\(names)::text[], \(hashes)::text[], \(connections)::text[], \(epochs)::int8[], \(versions)::text[],
                                         \(hubs)::text[])
                        WITH ORDINALITY AS u(name, hash, conn, epoch, version, hub, n)
                ), b AS (
                    SELECT i.n, bots.id, bots.token_hash, bots.token_hash = decode(i.hash, 'hex') AS matches
                    FROM input i JOIN bots ON bots.name = i.name
                ), old AS (
                    SELECT bots.id, bots.connection_id, bots.connected_hub FROM bots JOIN b ON b.id = bots.id
                    WHERE b.matches ORDER BY bots.id FOR UPDATE OF bots
                ), moved AS (
                    UPDATE bots SET connection_id = i.conn::uuid, connected_hub = i.hub, connected_at = now(),
                           last_seen_at = now(), first_seen_at = COALESCE(bots.first_seen_at, now()),
                           agent_version = i.version, current_epoch = i.epoch, lease_order = nextval('lease_moves')
                    FROM old JOIN b ON b.id = old.id JOIN input i ON i.n = b.n
                    WHERE bots.id = old.id
                    RETURNING bots.id, bots.name, bots.emergency_command_id, bots.lease_order, i.conn, i.hub
                ), notified AS (
                    SELECT count(pg_notify(\(PostgresIngestStore.leaseChannel),
                                           m.conn || chr(9) || m.name || chr(9) || m.lease_order || chr(9) || m.hub)) AS sent
                    FROM (SELECT * FROM moved ORDER BY id) m
                )
                SELECT i.n, b.id, b.token_hash IS NOT NULL, o.id IS NOT NULL, o.connection_id, o.connected_hub,
                       CASE WHEN o.id IS NOT NULL THEN
                           (SELECT COALESCE(max(s.stored_through), 0) FROM ingest_streams s WHERE s.bot_id = b.id AND s.epoch = i.epoch)
                       ELSE 0 END,
                       COALESCE(m.emergency_command_id IS NOT NULL, false)
                           OR (o.id IS NOT NULL AND EXISTS (SELECT 1 FROM commands c WHERE c.bot_id = b.id AND c.state = ANY(\(open)::text[]))),
                       (SELECT sent FROM notified), COALESCE(m.lease_order, 0)
                FROM input i LEFT JOIN b ON b.n = i.n LEFT JOIN old o ON o.id = b.id LEFT JOIN moved m ON m.id = b.id
                ORDER BY i.n
                """, logger: logger)
                .decode((Int64, Int32?, Bool?, Bool, UUID?, String?, Int64, Bool, Int64, Int64).self) {
                rows.append(row)
            }
            return rows
        }
        var leases = [Lease?](repeating: nil, count: requests.count)
        for row in rows where row.0 >= 1 && Int(row.0) <= requests.count {
            guard let id = row.1 else { continue }
            leases[Int(row.0) - 1] = Lease(botID: id, hasToken: row.2 ?? false, taken: row.3, oldConnection: row.4,
                                           oldHub: row.5, stored: row.6, commandsWaiting: row.7, order: row.9)
        }
        return leases
    }
}
