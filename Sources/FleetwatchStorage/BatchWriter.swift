import FleetwatchIngest
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// Stores batches from many connections in groups: one SQL statement (one transaction, one commit) for up
/// to `maxGroup` batches. While a group is being written, new batches queue up and form the next group,
/// so commits and round trips shrink as load grows, and an idle hub still writes each batch at once.
///
/// Bulky batches (many samples or long strings: a backfill, or a bot flooding the hub) are written in their
/// own groups and never more than one statement at a time, so the small batches of the rest of the fleet
/// always have a statement of their own and never wait behind a megabyte insert.
actor BatchWriter {
    /// One connection's run of batches: one batch, or several consecutive batches of one stream that waited
    /// on the connection together (stored in one statement, answered with one outcome each).
    struct Item {
        let rows: [SampleRows]
        let batches: [ValidatedBatch]
        let session: BotSession
        /// The last sequence of the run its connection handed over before and had no answer for yet; -1 for none. The
        /// run is stored only if that one was (`IngestStore.submit`).
        let after: Int64
        /// Answered once: by the statement, or by a give-up when the database goes down (`failFast(with:)`).
        let outcome: AnswerOnce<[StoreOutcome]>

        init(rows: [SampleRows], batches: [ValidatedBatch], session: BotSession, after: UInt64? = nil,
             outcome: AnswerOnce<[StoreOutcome]>) {
            self.rows = rows
            self.batches = batches
            self.session = session
            self.after = after.map { Int64($0) } ?? -1
            self.outcome = outcome
            samples = rows.reduce(0) { $0 + $1.count }
            bytes = rows.reduce(0) { $0 + $1.bytes }
        }
        var stream: StreamKey { StreamKey(bot: session.botID, epoch: batches[0].epoch) }
        /// Counted once: the queue, the group's budget and the bulk test all read them.
        let samples: Int
        let bytes: Int
        /// Its place in the order the writer was handed items (both queues): a stream's items are written in it.
        var arrival = 0
        /// A run big enough to hold a statement for a while.
        var isBulk: Bool { samples > BatchWriter.bulkSamples || bytes > BatchWriter.bulkBytes }
    }

    /// A bot run: its ledger row is updated once per statement.
    struct StreamKey: Hashable {
        var bot: Int32
        var epoch: UInt64
    }

    /// Past these, a batch is bulk.
    static let bulkSamples = 2_000
    static let bulkBytes = 256 * 1024
    /// Most samples and bytes of one group of small items: what 64 items just short of bulk come to. The one-second
    /// batches of 128 bots (the most a group takes) are a small part of it; 128 such items are not.
    static let groupSamples = 64 * bulkSamples
    static let groupBytes = 64 * bulkBytes
    /// How far past the head of the queue a group looks for batches of other streams (a bot with many batches
    /// waiting must not make every group scan all of them).
    static let scanFactor = 4

    private let client: any PostgresQuerying
    private let logger: Logger
    private let hubID: String
    private let partitions: PartitionMaintainer
    private let maxGroup: Int
    private let maxConcurrent: Int
    /// Waiting batches, small and bulk apart, each in arrival order.
    private var small = CircularBuffer<Item>()
    private var bulk = CircularBuffer<Item>()
    /// Statements being written.
    private(set) var running = 0
    private var runningBulk = 0
    /// The groups being written, by flush: answered at once, with the queued items, when the database goes down.
    private var inFlight: [Int: [Item]] = [:]
    /// The streams of the groups being written: a stream's next run waits for its statement to end (two statements
    /// of one stream at once could commit out of order; `WriteGroup`).
    private var busy = Set<StreamKey>()
    private var flushes = 0
    private var arrivals = 0
    /// The database's health, once `failFast(with:)` set it: a store is refused while it is down, and the stores
    /// waiting are given up on the moment it goes down.
    private nonisolated let health = Mutex<DatabaseHealth?>(nil)

    /// Gives up on a statement whose answer can no longer come (`StatementWatch`).
    let watch: StatementWatch

    init(client: any PostgresQuerying, logger: Logger, hubID: String, partitions: PartitionMaintainer,
         maxGroup: Int = 128, maxConcurrent: Int = 2, watch: StatementWatch = StatementWatch()) {
        self.watch = watch
        self.client = client
        self.logger = logger
        self.hubID = hubID
        self.partitions = partitions
        precondition(maxGroup > 0 && maxConcurrent > 0, "a group holds a store, and a statement runs")
        self.maxGroup = maxGroup
        self.maxConcurrent = maxConcurrent
    }

    /// Stores a run of batches of one stream (one epoch, increasing sequences) in one statement: one outcome per
    /// batch, in order. Batches at or below the stream's stored sequence are duplicates; the rest are stored.
    func store(run rows: [SampleRows], batches: [ValidatedBatch], session: BotSession) async throws -> [StoreOutcome] {
        try await withCheckedThrowingContinuation { continuation in
            submit(run: rows, batches: batches, session: session, after: nil) { continuation.resume(with: $0) }
        }
    }

    /// Queues a run as `store(run:batches:session:)` does and returns at once; `answer` gets the outcomes. `after`: the
    /// last sequence of the run the connection handed over before and has no answer for yet; this run is stored only
    /// if that one was, and answered `.deferred` otherwise (`IngestStore.submit`).
    func submit(run rows: [SampleRows], batches: [ValidatedBatch], session: BotSession, after: UInt64?,
                answer: @escaping @Sendable (Result<[StoreOutcome], any Error>) -> Void) {
        precondition(!batches.isEmpty && rows.count == batches.count, "one row set per batch")
        precondition(zip(batches, batches.dropFirst()).allSatisfy { $0.epoch == $1.epoch && $0.sequence < $1.sequence },
                     "a run is one epoch in increasing sequence order")
        // Read in the same actor turn as the item is queued: a store that sees the database up is queued before
        // the give-up of its going down (`giveUpAll`) runs here.
        if let state = health.withLock({ $0?.current }), case .down = state {
            return answer(.failure(DatabaseUnavailable(state: state)))
        }
        var item = Item(rows: rows, batches: batches, session: session, after: after, outcome: AnswerOnce(answer))
        item.arrival = arrivals
        arrivals &+= 1
        if item.isBulk { bulk.append(item) } else { small.append(item) }
        startFlushIfIdle()
    }

    /// Stores waiting for a statement (for tests).
    var queued: Int { small.count + bulk.count }

    /// Makes every store give up (`DatabaseUnavailable`) the moment `health` notices the database down, and refuses
    /// stores while it is down, as `DatabaseHealth.failFast` does for any step, but without a task per store: the
    /// waiting stores are answered from here. A statement in flight is left to end by itself (its answer is then
    /// dropped): a batch not acknowledged is sent again and deduplicated.
    nonisolated func failFast(with health: DatabaseHealth) {
        self.health.withLock { $0 = health }
        health.onChange { [weak self] state in
            guard case .down = state, let self else { return }
            Task { await self.giveUpAll(DatabaseUnavailable(state: state)) }
        }
    }

    /// Answers every queued and in-flight store with `error`; the queued ones are not written. Also when the database
    /// is back by the time this runs (a short flap): the stores are deferred, and their batches sent again.
    private func giveUpAll(_ error: DatabaseUnavailable) {
        for item in small { item.outcome.resume(.failure(error)) }
        for item in bulk { item.outcome.resume(.failure(error)) }
        small.removeAll()
        bulk.removeAll()
        for group in inFlight.values { for item in group { item.outcome.resume(.failure(error)) } }
    }

    /// Starts a statement in every free slot that has a group waiting. The slot's task runs at a high priority: a
    /// statement's answer is taken, and the next group built and sent, before the work of the connections (whose
    /// batches wait for it), not behind it; PostgreSQL idled between statements otherwise.
    private func startFlushIfIdle() {
        while let next = takeNext() {
            Task(priority: .high) { await self.flush(next.group, id: next.id, bulk: next.bulk) }
        }
    }

    /// The next group for a free slot, counted as running; nil when every slot is busy, nothing waits, or what waits
    /// belongs to streams whose statements are running.
    ///
    /// At most one bulk statement at a time, started as soon as none runs and its stream has no statement running (so
    /// a backfill is never starved); the other slots are the small batches'. A stream's items are written in the order
    /// they came, across the two queues: one connection may hand over a bulk run and then a small one behind it.
    private func takeNext() -> (group: [Item], id: Int, bulk: Bool)? {
        guard running < maxConcurrent else { return nil }
        let group: [Item]
        let isBulk: Bool
        if runningBulk == 0, let head = bulk.first, !busy.contains(head.stream),
           !small.contains(where: { $0.stream == head.stream && $0.arrival < head.arrival }) {
            isBulk = true
            group = [bulk.removeFirst()]
        } else if !small.isEmpty {
            isBulk = false
            group = Self.takeGroup(from: &small, maxGroup: maxGroup, busy: busy, bulkAhead: bulk.isEmpty ? [:] : Self.firstArrivals(bulk))
            guard !group.isEmpty else { return nil }   // every waiting stream has a statement running
        } else {
            return nil
        }
        running += 1
        if isBulk { runningBulk += 1 }
        for item in group { busy.insert(item.stream) }
        let id = flushes
        flushes &+= 1
        inFlight[id] = group
        return (group, id, isBulk)
    }

    /// The arrival of each stream's oldest item in `queue`.
    static func firstArrivals(_ queue: CircularBuffer<Item>) -> [StreamKey: Int] {
        var first: [StreamKey: Int] = [:]
        for item in queue where first[item.stream] == nil { first[item.stream] = item.arrival }
        return first
    }

    /// Up to `maxGroup` small items with distinct (bot, epoch), the oldest ones, within `groupSamples` and `groupBytes`
    /// (the first always): the ledger row of a stream is updated once per statement. Items of a stream already in the
    /// group, in a statement running (`busy`), or behind a bulk item of their stream (`bulkAhead`: the arrival of each
    /// stream's oldest bulk item) keep their place for a later one.
    ///
    /// The group is in bot order: rows are locked in the order of the statement's input, the same bot order in
    /// every group, so two statements in flight wait for each other instead of deadlocking (as far as the plan
    /// follows it).
    static func takeGroup(from small: inout CircularBuffer<Item>, maxGroup: Int, busy: Set<StreamKey> = [],
                          bulkAhead: [StreamKey: Int] = [:],
                          maxSamples: Int = groupSamples, maxBytes: Int = groupBytes) -> [Item] {
        var seen = busy
        var group: [Item] = []
        var skipped: [Item] = []
        group.reserveCapacity(min(maxGroup, small.count))
        var scanned = 0
        var (samples, bytes) = (0, 0)
        while group.count < maxGroup, scanned < maxGroup * scanFactor, let item = small.first {
            let fresh = !seen.contains(item.stream) && (bulkAhead.isEmpty || (bulkAhead[item.stream] ?? .max) > item.arrival)
            if fresh, !group.isEmpty, samples + item.samples > maxSamples || bytes + item.bytes > maxBytes { break }
            small.removeFirst()
            scanned += 1
            if fresh {
                seen.insert(item.stream)
                group.append(item)
                samples += item.samples
                bytes += item.bytes
            } else {
                skipped.append(item)
            }
        }
        for item in skipped.reversed() { small.prepend(item) }
        group.sort { ($0.stream.bot, $0.stream.epoch) < ($1.stream.bot, $1.stream.epoch) }
        return group
    }

    /// Writes `group`, then, in the same task, the next group waiting for the slot it frees: a busy writer starts its
    /// next statement the moment one ends, not after a new task's turn behind the stores its answers just woke.
    private func flush(_ group: [Item], id: Int, bulk: Bool) async {
        var (group, id, bulk) = (group, id, bulk)
        while true {
            await answer(group, flush: id)
            running -= 1
            if bulk { runningBulk -= 1 }
            guard let next = takeNext() else { break }
            (group, id, bulk) = next
            // The streams this statement held are free: what waited for them may fill another free slot.
            startFlushIfIdle()
        }
    }

    /// Writes one group and answers each of its stores.
    private func answer(_ group: [Item], flush id: Int) async {
        do {
            let outcomes = try await writeCreatingPartitions(group)
            for (item, outcome) in zip(group, outcomes) { item.outcome.resume(.success(outcome)) }
        } catch let error as PSQLError where group.count > 1 && Self.isBatchSpecific(error) {
            // One batch's data broke the statement: find it, so only that batch fails.
            await writeRefused(group)
        } catch {
            for item in group { item.outcome.resume(.failure(error)) }
        }
        inFlight[id] = nil
        for item in group { busy.remove(item.stream) }
    }

    /// Finds the runs of `group` whose data PostgreSQL refuses, after it refused the group whole: halves are written
    /// while the refusal stays in one of them, so only the refused run fails, and a bad run in a group of n costs about
    /// 2·log2(n) statements, not the n that writing each run alone takes (a bot able to break a statement every second
    /// would otherwise turn the groups of the whole fleet into single statements). When both halves are refused the
    /// refusal is not one run's: each run is then written alone, as before. Runs given up on meanwhile are not
    /// written: nobody waits for them.
    private func writeRefused(_ group: [Item]) async {
        let waiting = group.filter { $0.outcome.isWaiting }
        guard waiting.count > 1 else {
            for item in waiting { _ = await writeOrRefuse([item]) }
            return
        }
        let halves = Self.halves(waiting)
        if await writeOrRefuse(halves[0]) {
            if await writeOrRefuse(halves[1]) {
                for item in waiting { _ = await writeOrRefuse([item]) }
            } else {
                await writeRefused(halves[0])
            }
        } else {
            await writeRefused(halves[1])   // the refusal is in the second half
        }
    }

    /// Writes `group` and answers its runs; true, with none answered, when PostgreSQL refused the group (of more than
    /// one run) for a run's data.
    private func writeOrRefuse(_ group: [Item]) async -> Bool {
        let waiting = group.filter { $0.outcome.isWaiting }
        guard !waiting.isEmpty else { return false }
        do {
            let outcomes = try await writeCreatingPartitions(waiting)
            for (item, outcome) in zip(waiting, outcomes) { item.outcome.resume(.success(outcome)) }
        } catch let error as PSQLError where waiting.count > 1 && Self.isBatchSpecific(error) {
            return true
        } catch {
            for item in waiting { item.outcome.resume(.failure(error)) }
        }
        return false
    }

    /// The two halves of a group, each in the group's (bot) order.
    static func halves(_ group: [Item]) -> [[Item]] {
        let mid = group.count / 2
        return [Array(group[..<mid]), Array(group[mid...])]
    }

    private func writeCreatingPartitions(_ group: [Item]) async throws -> [[StoreOutcome]] {
        try await Self.retryingConflicts(logger: logger) {
            do {
                return try await write(group)
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23514" {
                // A batch for a day without a partition: create the partitions and try once more.
                var days: [Date] = []
                for item in group { for rows in item.rows { rows.forEachPart { days.append($0.start) } } }
                for day in days { try await partitions.ensure(dayOf: day) }
                return try await write(group)
            }
        }
    }

    /// Most tries of a statement PostgreSQL rolled back for a conflict with another transaction.
    static let conflictAttempts = 4

    /// `body`, tried again when PostgreSQL rolled it back for a deadlock or a serialization failure (class 40:
    /// nothing of it was committed, so trying again is safe), up to `conflictAttempts` times in all.
    static func retryingConflicts<T>(isolation: isolated (any _Concurrency.Actor)? = #isolation, logger: Logger, attempts: Int = conflictAttempts,
                                     isConflict: (any Error) -> Bool = isConflict,
                                     _ body: () async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch where attempt < attempts && isConflict(error) {
                logger.notice("batch statement rolled back by a conflict with another transaction, trying again (\(attempt) of \(attempts - 1)): \(error)")
                attempt += 1
            }
        }
    }

    /// A deadlock (40P01) or serialization failure (40001).
    static func isConflict(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return false }
        return isConflict(sqlState: error.serverInfo?[.sqlState])
    }

    static func isConflict(sqlState: String?) -> Bool { sqlState == "40P01" || sqlState == "40001" }

    /// Whether PostgreSQL refused the statement for the data of a batch (a data exception, class 22, or an
    /// integrity violation, class 23), not for the database's state.
    static func isBatchSpecific(_ error: PSQLError) -> Bool { error.refusesTheData }

    /// One statement: lease check, ledger upsert (only above the stream's high-water mark), sample rows.
    private func write(_ group: [Item]) async throws -> [[StoreOutcome]] {
        var w = WriteGroup(hubID: hubID)
        let total = group.reduce(0) { $0 + $1.rows.reduce(0) { $0 + $1.metricIDs.count } }
        w.ids.reserveCapacity(total)
        w.offsets.reserveCapacity(total)
        w.values.reserveCapacity(total)
        for item in group {
            for (r, batch) in zip(item.rows, item.batches) {
                w.botIDs.append(item.session.botID)
                w.conns.append(item.session.connectionID)
                w.epochs.append(Int64(batch.epoch))
                w.seqs.append(Int64(batch.sequence))
                w.sent.append(Int32(batch.sentSamples))
                w.afters.append(item.after)
                w.kept.append(Int32(r.count))
                // The batch's rows (usually one): slices of the arrays, 1-based and inclusive for PostgreSQL.
                let (base, sbase) = (Int32(w.ids.count), Int32(w.sids.count))
                r.forEachPart { part in
                    w.partOf.append(Int32(w.botIDs.count))
                    w.starts.append(part.start)
                    w.ends.append(part.end)
                    w.lo.append(base + Int32(part.numbers.lowerBound) + 1)
                    w.hi.append(base + Int32(part.numbers.upperBound))
                    w.slo.append(sbase + Int32(part.states.lowerBound) + 1)
                    w.shi.append(sbase + Int32(part.states.upperBound))
                }
                w.ids += r.metricIDs; w.offsets += r.offsets; w.values += r.values
                w.sids += r.stateMetricIDs ?? []; w.soffsets += r.stateOffsets ?? []; w.states += r.states ?? []
            }
        }
        let logger = self.logger
        let count = w.botIDs.count
        let statement = w
        let watch = self.watch
        // A prepared statement: PostgreSQL parses and plans it once per connection, not once per group (that
        // was a third of its CPU time at one-second batches). Watched: a statement that will never be answered
        // must not hold one of the writer's slots for good (a store waiting behind it would wait forever).
        let outcomes = try await client.withLeasedConnection { connection in
            try await watch.run(on: connection) { connection in
                var outcomes = [StoreOutcome](repeating: .leaseLost, count: count)
                for try await (n, owned, stored, held) in try await connection.execute(statement, logger: logger) {
                    outcomes[Int(n) - 1] = !owned ? .leaseLost : stored ? .stored : held ? .deferred : .duplicate
                }
                return outcomes
            }
        }
        var out: [[StoreOutcome]] = []
        out.reserveCapacity(group.count)
        var next = 0
        for item in group {
            out.append(Array(outcomes[next..<next + item.batches.count]))
            next += item.batches.count
        }
        return out
    }
}

/// The statement that writes a group of batches: lease check, ledger upsert (only above each stream's
/// high-water mark) and sample rows, one result row per batch: (its place in the group, lease held, stored, held
/// back because the run its connection handed over before it was not stored).
struct WriteGroup: PostgresPreparedStatement {
    static let sql = """
        WITH input AS (
            SELECT * FROM unnest($1::int4[], $2::uuid[], $3::int8[], $4::int8[], $5::int4[], $6::int4[], $21::int8[])
                WITH ORDINALITY AS u(bot_id, conn, epoch, seq, sent, kept, after_seq, n)
        ), parts AS (
            -- Each batch's rows (usually one; see SampleRows): the batch's place in the input, and slices of the arrays.
            SELECT * FROM unnest($20::int4[], $7::timestamptz[], $8::int4[], $9::int4[], $10::int4[], $11::int4[],
                                 $19::timestamptz[]) AS p(n, t_start, lo, hi, slo, shi, t_end)
        ), lease AS (
            -- The bots whose lease the batches' connections hold, their rows locked until the commit, in bot order
            -- (a takeover waits for the lock, and a statement that waited reads the row again). A lock, not a new
            -- version of the row: writing the row at every batch cost PostgreSQL a fifth of its work at one-second
            -- batches.
            SELECT b.id, b.connection_id, b.last_seen_at FROM bots b
            JOIN (SELECT DISTINCT bot_id, conn FROM input) i ON b.id = i.bot_id AND b.connection_id = i.conn
            ORDER BY b.id FOR NO KEY UPDATE OF b
        ), seen AS (
            -- last_seen_at is written at most once a second per bot (what marks a bot stale is seconds).
            UPDATE bots b SET last_seen_at = now() FROM lease l
            WHERE b.id = l.id AND (l.last_seen_at IS NULL OR l.last_seen_at <= now() - interval '1 second')
        ), owned AS (
            SELECT i.* FROM input i JOIN lease l ON l.id = i.bot_id AND l.connection_id = i.conn
        ), checked AS (
            -- Each batch with its stream's high-water mark as of this statement's snapshot, and whether it is held
            -- back: its run was handed over while the connection's run before it (up to after_seq) had no answer,
            -- and that run is not stored. Nothing of a held run is written; the agent sends it again.
            SELECT o.*, s.stored_through AS through,
                   o.after_seq >= 0 AND (s.stored_through IS NULL OR s.stored_through < o.after_seq) AS held
            FROM owned o LEFT JOIN ingest_streams s ON s.bot_id = o.bot_id AND s.epoch = o.epoch
        ), fresh AS (
            -- Above the stream's high-water mark. A run's batches are one stream's, in increasing order, so the
            -- fresh ones are its tail. This relies on no two statements that pass the lease check for one stream
            -- overlapping: the batch writer never runs two statements of one stream at once, and another
            -- connection's statement needs the bot's lease, whose row this statement's lease step holds locked (a
            -- takeover waits for it). Were that ever broken, partly overlapping runs would insert a batch twice.
            SELECT * FROM checked WHERE NOT held AND (through IS NULL OR seq > through)
        ), stored AS (
            INSERT INTO ingest_streams AS s (bot_id, epoch, stored_through, batches, samples_sent, samples_stored,
                                             first_stored_at, last_stored_at, hub)
            SELECT bot_id, epoch, max(seq), count(*), sum(sent), sum(kept), now(), now(), $12::text
            FROM fresh GROUP BY bot_id, epoch
            ON CONFLICT (bot_id, epoch) DO UPDATE SET
                stored_through = EXCLUDED.stored_through, batches = s.batches + EXCLUDED.batches,
                samples_sent = s.samples_sent + EXCLUDED.samples_sent,
                samples_stored = s.samples_stored + EXCLUDED.samples_stored,
                last_stored_at = EXCLUDED.last_stored_at, hub = EXCLUDED.hub
            WHERE s.stored_through < EXCLUDED.stored_through
            RETURNING bot_id, epoch
        ), inserted AS (
            INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals,
                                 state_metric_ids, state_offsets_ms, states, t_end)
            SELECT f.bot_id, p.t_start, f.epoch, f.seq,
                   ($13::int4[])[p.lo:p.hi], ($14::int4[])[p.lo:p.hi], ($15::float8[])[p.lo:p.hi],
                   CASE WHEN p.shi >= p.slo THEN ($16::int4[])[p.slo:p.shi] END,
                   CASE WHEN p.shi >= p.slo THEN ($17::int4[])[p.slo:p.shi] END,
                   CASE WHEN p.shi >= p.slo THEN ($18::text[])[p.slo:p.shi] END,
                   p.t_end
            FROM fresh f JOIN parts p ON p.n = f.n
            -- Only the streams whose ledger row this statement advanced. `IS TRUE` keeps the test a subplan, which
            -- PostgreSQL hashes (checked with auto_explain): as a join, estimated at one row a side, it compared every
            -- batch with every stream, 16,256 comparisons for a group of 128 one-batch runs, 40 % of the statement.
            WHERE f.kept > 0 AND ((f.bot_id, f.epoch) IN (SELECT bot_id, epoch FROM stored)) IS TRUE
        )
        SELECT i.n, l.id IS NOT NULL, f.n IS NOT NULL AND s.bot_id IS NOT NULL, coalesce(c.held, false)
        FROM input i
        LEFT JOIN lease l ON l.id = i.bot_id AND l.connection_id = i.conn
        LEFT JOIN checked c ON c.n = i.n
        LEFT JOIN fresh f ON f.n = i.n
        LEFT JOIN stored s ON s.bot_id = i.bot_id AND s.epoch = i.epoch
        ORDER BY i.n
        """
    typealias Row = (Int64, Bool, Bool, Bool)
    /// Named once: postgres-nio's default name is `String(reflecting:)` of the type, worked out at every execution.
    static let name = "FleetwatchStorage.WriteGroup"

    var hubID: String
    var botIDs: [Int32] = [], conns: [UUID] = [], epochs: [Int64] = [], seqs: [Int64] = [], afters: [Int64] = []
    var sent: [Int32] = [], kept: [Int32] = [], starts: [Date] = [], ends: [Date] = []
    var lo: [Int32] = [], hi: [Int32] = [], slo: [Int32] = [], shi: [Int32] = []
    var ids: [Int32] = [], offsets: [Int32] = [], values: [Double] = []
    var sids: [Int32] = [], soffsets: [Int32] = [], states: [String] = []
    /// Per row: the place of its batch in the input (1-based); `starts`, `ends`, `lo`…`shi` are per row too.
    var partOf: [Int32] = []

    init(hubID: String) { self.hubID = hubID }

    func makeBindings() throws -> PostgresBindings {
        // The fixed-width arrays in one pass each (`BinaryArray`): postgres-nio's generic array encoding costs
        // several calls per element.
        var b = PostgresBindings(capacity: 21)
        b.append(BinaryArray(botIDs)); b.append(conns); b.append(BinaryArray(epochs)); b.append(BinaryArray(seqs))
        b.append(BinaryArray(sent)); b.append(BinaryArray(kept)); b.append(BinaryArray(starts))
        b.append(BinaryArray(lo)); b.append(BinaryArray(hi)); b.append(BinaryArray(slo)); b.append(BinaryArray(shi))
        b.append(hubID)
        b.append(BinaryArray(ids)); b.append(BinaryArray(offsets)); b.append(BinaryArray(values))
        b.append(BinaryArray(sids)); b.append(BinaryArray(soffsets)); b.append(states)
        b.append(BinaryArray(ends))
        b.append(BinaryArray(partOf))
        b.append(BinaryArray(afters))
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
