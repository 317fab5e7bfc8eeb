import FleetwatchAgent
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import Testing
import WSClient
#if canImport(Glibc)
import Glibc
#endif

/// More hostile input against a real hub process: floods of WebSocket fragments, messages that never end,
/// slow and non-reading clients, huge bodies, injection in names and reasons, skewed clocks. In each test
/// one good bot streams the whole time and must come out unaffected; the hub must stay ready and its memory
/// bounded.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"), .enabled(if: runsHereNow(.quiet)))
struct HostileInputExtraTests {
    /// The hub idles around 40–60 MiB; anything near this means it buffers what an attacker sends.
    static let rssLimitKiB = 400 * 1024

    // MARK: 1. a million one-byte fragments

    /// One binary frame without FIN and 999 999 one-byte continuation frames, never finished, before any hello.
    @Test(.timeLimit(.minutes(3)))
    func aMillionOneByteFragmentsAreRefused() async throws {
        let env = try await HostileHub.start()
        defer { env.stopAll() }
        let started = ContinuousClock.now
        let ws = try await RawWebSocket.open(port: env.hub.port, path: WireProtocol.agentPath)
        defer { ws.socket.disconnect() }

        let first = RawWebSocket.frame(opcode: 0x2, fin: false, payload: [0x41])
        let fragment = RawWebSocket.frame(opcode: 0x0, fin: false, payload: [0x41])   // 7 bytes, masked
        let perChunk = 65_536 / fragment.count
        var chunk: [UInt8] = []
        chunk.reserveCapacity(perChunk * fragment.count)
        for _ in 0..<perChunk { chunk += fragment }

        let sendDeadline = started + .seconds(40)
        var sent = 0
        var remaining = 999_999
        var closedEarly: RawWebSocket.CloseOutcome?
        var writing = await ws.socket.write(first, until: sendDeadline)
        if writing { sent = 1 }
        while writing && remaining > 0 {
            let n = min(perChunk, remaining)
            writing = await ws.socket.write(n == perChunk ? chunk : Array(chunk[0..<(n * fragment.count)]), until: sendDeadline)
            if writing {
                remaining -= n
                sent += n
            }
            // A close that has arrived already: a client stops sending then.
            if writing, let early = await ws.closeIfArrived() {
                closedEarly = early
                break
            }
        }
        let outcome: RawWebSocket.CloseOutcome
        if let closedEarly {
            outcome = closedEarly
        } else {
            outcome = await ws.awaitClose(until: started + .seconds(55))
        }
        let took = ContinuousClock.now - started
        print("hostile-input: one-byte fragments: \(sent) sent, hub ended the connection with \(outcome) after \(took)")
        #expect(outcome != .timedOut, "the hub kept a never-ending message of \(sent) fragments open for \(took)")
        try await env.finish(expectUninterrupted: true)
    }

    // MARK: 2. a message that never ends

    /// A binary frame without FIN and then silence: the heartbeat (1 s here) ends it, before and after the hello.
    @Test(.timeLimit(.minutes(3)))
    func aMessageThatNeverEndsIsClosed() async throws {
        let env = try await HostileHub.start(bots: ["victim"], config: #"{"hub": {"heartbeat_interval": 1}}"#)
        defer { env.stopAll() }
        let port = env.hub.port
        let hello = Array(Frame.hello(Hello(botID: "victim", token: "secret", agentVersion: "raw", bootEpoch: 78,
                                            lastAckedSequence: 0)).encoded().readableBytesView)
        async let anonymous = Self.unfinishedMessage(port: port, hello: nil)
        async let authenticated = Self.unfinishedMessage(port: port, hello: hello)
        let (before, after) = try await (anonymous, authenticated)
        print("hostile-input: unfinished message: before hello \(before.outcome) after \(before.took), after hello \(after.outcome) after \(after.took)")
        // Before the hello only the fixed 10 s hello timeout applies (docs/configuration.md): 4006.
        #expect(before.outcome == .closeFrame(CloseCode.helloExpected.rawValue) && before.took < .seconds(20),
                "before the hello: \(before.outcome) after \(before.took)")
        // After the welcome, a message that never completes is silence: 4008 after two 1 s intervals.
        #expect(after.outcome == .closeFrame(CloseCode.heartbeatTimeout.rawValue) && after.took < .seconds(10),
                "after the hello: \(after.outcome) after \(after.took)")
        #expect(try await DashboardAPITests.count(env.db, "SELECT count(*) FROM samples s JOIN bots b ON b.id = s.bot_id WHERE b.name = 'victim'") == 0)
        // The hub says where the silence was: it last read a frame (the unfinished one) two intervals or more before.
        let report = env.hub.log.split(separator: "\n").first { $0.contains("bot victim from") && $0.contains("closed for silence") }
        let readAgo = report.flatMap { line in
            line.firstRange(of: "last read a frame from it ").flatMap { Int(line[$0.upperBound...].prefix(while: \.isNumber)) }
        }
        #expect((readAgo ?? 0) >= 2_000, "\(report ?? "no silence report in the hub's log")")
        try await env.finish(expectUninterrupted: false)
    }

    /// Opens the agent endpoint, optionally says hello and waits for the welcome, then starts a message it
    /// never finishes; how the hub ended the connection and how long after the unfinished frame.
    static func unfinishedMessage(port: Int, hello: [UInt8]?) async throws -> (outcome: RawWebSocket.CloseOutcome, took: Duration) {
        let ws = try await RawWebSocket.open(port: port, path: WireProtocol.agentPath)
        defer { ws.socket.disconnect() }
        if let hello {
            guard await ws.send(opcode: 0x2, fin: true, payload: hello) else { throw TestSupportError("hello not sent") }
            let deadline = ContinuousClock.now + .seconds(10)
            var welcomed = false
            while !welcomed {
                switch await ws.nextFrame(until: deadline) {
                case .frame(let f): welcomed = f.opcode == 0x2 && f.payload.first == FrameType.welcome.rawValue
                case .ended(let why): throw TestSupportError("no welcome: \(why)")
                }
            }
        }
        let started = ContinuousClock.now
        guard await ws.send(opcode: 0x2, fin: false, payload: [FrameType.batch.rawValue, 1, 2, 3]) else {
            throw TestSupportError("unfinished frame not sent")
        }
        let outcome = await ws.awaitClose(until: started + .seconds(30))
        return (outcome, ContinuousClock.now - started)
    }

    // MARK: 3. slow clients

    /// 50 connections dripping a request head one byte per 500 ms for 10 s; the API answers meanwhile.
    @Test(.timeLimit(.minutes(3)))
    func slowlorisClientsDoNotStarveTheAPI() async throws {
        let env = try await HostileHub.start()
        defer { env.stopAll() }
        let port = env.hub.port
        let request = Array("GET /api/bots HTTP/1.1\r\nHost: x\r\n".utf8)
        let sockets = try (0..<50).map { _ in try RawSocket(port: port) }
        defer { sockets.forEach { $0.disconnect() } }
        let dripping = Task { () -> Int in
            var dropped = Set<Int>()
            for i in 0..<20 where !Task.isCancelled {
                for (n, socket) in sockets.enumerated() where !dropped.contains(n) {
                    let ok = await socket.write([request[i]], until: ContinuousClock.now + .milliseconds(100))
                    if !ok { dropped.insert(n) }
                }
                try? await Task.sleep(for: .milliseconds(500))
            }
            return dropped.count
        }
        defer { dripping.cancel() }
        var latencies: [Duration] = []
        let until = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < until {
            let asked = ContinuousClock.now
            let (status, body) = try await api("GET", port: port, path: "/api/bots")
            latencies.append(ContinuousClock.now - asked)
            #expect(status == 200, "\(body)")
            try await Task.sleep(for: .milliseconds(500))
        }
        let dropped = await dripping.value
        print("hostile-input: slowloris: \(dropped) of 50 dripping connections closed by the hub; API latencies \(latencies)")
        #expect(latencies.count >= 5)
        #expect(latencies.allSatisfy { $0 < .seconds(5) }, "slow API answers: \(latencies)")
        try await env.finish(expectUninterrupted: true)
    }

    /// Dashboard WebSockets that never read (tiny receive buffers) for 15 s; another viewer keeps getting updates.
    @Test(.timeLimit(.minutes(3)))
    func viewersThatNeverReadDoNotHurtTheHub() async throws {
        let password = "never-reading-viewer-pw"
        let env = try await HostileHub.start(
            config: #"{"dashboard": {"admin_password": "never-reading-viewer-pw", "update_interval": 0.05, "ping_interval": 0.2}}"#,
            wideMetrics: 30)
        defer { env.stopAll() }
        let port = env.hub.port
        let session = try #require(try await signIn(port: port, user: "admin", password: password).1)
        let origin = ("Origin", "http://127.0.0.1:\(port)")
        var stalled: [RawWebSocket] = []
        defer { stalled.forEach { $0.socket.disconnect() } }
        for _ in 0..<3 {
            stalled.append(try await RawWebSocket.open(port: port, path: "/ws", headers: [("Cookie", session.cookie), origin],
                                                       receiveBufferBytes: 4096))
        }
        let viewer = try await ViewerClient.connect(port: port, headers: session.cookieOnly + [origin])
        defer { viewer.stop() }
        try await Task.sleep(for: .seconds(5))
        let early = viewer.messages.withLock { $0.count }
        try await Task.sleep(for: .seconds(10))
        let late = viewer.messages.withLock { $0.count }
        print("hostile-input: non-reading viewers: the reading viewer got \(late - early) messages in the last 10 s")
        #expect(late > early + 20, "the reading viewer got only \(late - early) messages in 10 s")
        #expect(viewer.all.contains { ($0["metrics"] as? [String: Any])?["good"] != nil }, "no update of the good bot")
        #expect(viewer.closeCode.withLock { $0 } == nil)
        #expect(try await api("GET", port: port, path: "/api/bots").0 == 200)
        try await env.finish(expectUninterrupted: true)
    }

    // MARK: 4. oversized bodies

    static let hugeBodyBytes = 64 << 20

    /// 64 MiB bodies to an operator endpoint and to the sign-in: refused (or cut off), nothing created.
    @Test(.timeLimit(.minutes(3)))
    func oversizedBodiesAreRefused() async throws {
        let env = try await HostileHub.start(bots: ["stop-target"])
        defer { env.stopAll() }
        let port = env.hub.port
        async let stop = Self.postHuge(port: port, path: "/api/bots/stop-target/emergency-stop",
                                       headers: [("Authorization", "Bearer \(operatorToken)")])
        async let login = Self.postHuge(port: port, path: "/auth/login", headers: [])
        let (stopStatus, loginStatus) = try await (stop, login)
        print("hostile-input: 64 MiB bodies: emergency-stop \(String(describing: stopStatus)), login \(String(describing: loginStatus))")
        for (name, status) in [("emergency-stop", stopStatus), ("login", loginStatus)] {
            // 413 from collectBody(upTo: 64 KiB); 400 from /auth/login, which turns any decoding failure into 400.
            #expect(status == nil || status == 400 || status == 413, "\(name): \(String(describing: status))")
        }
        #expect(try await DashboardAPITests.count(env.db, "SELECT count(*) FROM commands") == 0)
        #expect(try await api("GET", port: port, path: "/api/bots").0 == 200)
        try await Task.sleep(for: .seconds(2))   // the refusals are quick: let the good bot stream meanwhile
        try await env.finish(expectUninterrupted: true)
    }

    /// POSTs a 64 MiB JSON-looking body by hand; the response status, or nil if the connection ended without one.
    static func postHuge(port: Int, path: String, headers: [(String, String)]) async throws -> Int? {
        let socket = try RawSocket(port: port)
        defer { socket.disconnect() }
        let prefix = Array(#"{"reason": ""#.utf8)
        let suffix = Array(#"", "username": "admin", "password": "not-the-password"}"#.utf8)
        var head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\n"
        head += "Content-Length: \(hugeBodyBytes)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        let deadline = ContinuousClock.now + .seconds(60)
        var response: [UInt8] = []
        var writing = await socket.write(Array(head.utf8) + prefix, until: deadline)
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 64 * 1024)
        var fill = hugeBodyBytes - prefix.count - suffix.count
        while writing && fill > 0 {
            let n = min(fill, chunk.count)
            writing = await socket.write(n == chunk.count ? chunk : Array(chunk[0..<n]), until: deadline)
            fill -= n
            // An early answer: stop sending, as a client should.
            if case .data(let bytes) = await socket.read(max: 4096, until: ContinuousClock.now) {
                response += bytes
                writing = false
            }
        }
        if writing && fill <= 0 { _ = await socket.write(suffix, until: deadline) }
        reading: while RawSocket.headerEnd(response) == nil {
            switch await socket.read(until: deadline) {
            case .data(let bytes): response += bytes
            default: break reading
            }
        }
        guard response.count >= 12, response.starts(with: Array("HTTP/1.1 ".utf8)) else { return nil }
        return Int(String(decoding: response[9..<12], as: UTF8.self))
    }

    // MARK: 5. SQL and HTML injection

    @Test(.timeLimit(.minutes(3)))
    func injectionInNamesAndReasonsIsInert() async throws {
        let env = try await HostileHub.start(bots: ["victim", "names-bot", "stop-target"])
        defer { env.stopAll() }
        let (db, hub) = (env.db, env.hub)

        // (a) A bot name with SQL in it: `bots add` refuses it with a message saying why.
        let evilBot = "x'; DROP TABLE samples; --"
        let add = try ChildProcess(builtExecutable("monitor-hub"), ["bots", "add", evilBot, "--database-url", db.url.urlString],
                                   logPath: "\(NSTemporaryDirectory())/\(db.url.database)-bots-add-evil.log")
        let exitStatus = await add.stop(signal: 0, timeout: .seconds(60))
        let output = add.log
        #expect(exitStatus != 0, "bots add accepted \(evilBot): \(output)")
        let lower = output.lowercased()
        let explains = lower.contains("a–z") || lower.contains("a-z") || lower.contains("characters") || lower.contains("invalid")
        #expect(!output.contains("PSQLError") && explains, "bots add should say what a bot name may hold; it printed: \(output)")
        #expect(try await DashboardAPITests.count(db, "SELECT count(*) FROM bots WHERE name = \(evilBot)") == 0)
        #expect(try await DashboardAPITests.count(db, "SELECT count(*) FROM pg_class WHERE relname = 'samples' AND relkind IN ('r', 'p')") == 1)

        // An agent claiming that bot id: the hello is malformed (bot id alphabet), so 4000, not 4002
        // (Hello.swift checks the alphabet while decoding; docs/protocol.md §2: "close 4000: the hello is malformed (bad bot id …)").
        let evilAgent = try EndToEndTests.agent(evilBot, hub: hub.agentURL, ledger: SealedLedger())
        let evilRun = Task { try await evilAgent.run() }
        defer { evilRun.cancel() }
        await EndToEndTests.trade(evilAgent, round: 1)
        let refused = try await eventually(.seconds(20)) { await evilAgent.status.lastCloseCode != nil }
        let evilStatus = await evilAgent.status
        evilRun.cancel()
        #expect(refused && evilStatus.lastCloseCode == CloseCode.protocolError.rawValue, "\(evilStatus)")
        #expect(evilStatus.ackedBatches == 0)

        // (b) Metric names with HTML and SQL: the Swift agent rewrites them to the wire alphabet…
        let names = try EndToEndTests.agent("names-bot", hub: hub.agentURL, ledger: SealedLedger())
        let namesRun = Task { try await names.run() }
        defer { namesRun.cancel() }
        names.gauge("<script>").set(1)
        names.counter("a'; DROP TABLE bots;--").increment()
        await names.flush()
        #expect(try await eventually(.seconds(20)) { await EndToEndTests.drained([names]) })
        namesRun.cancel()
        let metricNames: [String] = try await db.withClient { client in
            var out: [String] = []
            for try await name in try await client.query("SELECT name FROM metrics", logger: Logger(label: "test")).decode(String.self) {
                out.append(name)
            }
            return out
        }
        #expect(Set(metricNames).isSuperset(of: ["_script_", "a___DROP_TABLE_bots_--"]), "\(metricNames)")
        #expect(metricNames.allSatisfy { WireProtocol.isValidName($0, maxBytes: WireProtocol.maxMetricNameBytes) }, "\(metricNames)")
        // …and the hub refuses such names from any other agent: the whole batch, 4005.
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        for evil in ["<script>", "a'; DROP TABLE bots;--"] {
            let payload = BatchPayload(series: [Series(name: evil, kind: .gauge, timestamps: [nowMs], values: [1])])
            let batch = try BatchFrame.make(bootEpoch: 77, sequence: 1, payload: payload)
            let code = try await HostileInputTests.closeCode(hub.agentURL, frames: [HostileInputTests.hello("victim", token: "secret"),
                                                                                     .binary(Frame.batch(batch).encoded())])
            #expect(code == CloseCode.badBatch.rawValue, "metric name \(evil): \(String(describing: code))")
        }
        #expect(try await DashboardAPITests.count(db, "SELECT count(*) FROM samples s JOIN bots b ON b.id = s.bot_id WHERE b.name = 'victim'") == 0)

        // (c) A reason with SQL and HTML is stored and returned verbatim.
        let reason = "'); DROP TABLE commands; -- <img src=x onerror=alert(1)>"
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["reason": reason]), as: UTF8.self)
        let (status, created) = try await api("POST", port: hub.port, path: "/api/bots/stop-target/emergency-stop", body: body)
        #expect(status == 202, "\(created)")
        let id = (jsonObject(created) as? [String: Any])?["id"] as? String ?? ""
        let (readStatus, read) = try await api("GET", port: hub.port, path: "/api/commands/\(id)")
        #expect(readStatus == 200, "\(read)")
        #expect((jsonObject(read) as? [String: Any])?["reason"] as? String == reason, "\(read)")
        #expect(try await DashboardAPITests.count(db, "SELECT count(*) FROM commands WHERE reason = \(reason)") == 1)

        #expect(try await DashboardAPITests.count(db, """
            SELECT count(*) FROM pg_class WHERE relname IN ('samples', 'bots', 'commands', 'metrics') AND relkind IN ('r', 'p')
            """) == 4)
        #expect(try await DashboardAPITests.count(db, "SELECT count(*) FROM bots") == 4)
        try await env.finish(expectUninterrupted: true)
    }

    // MARK: 6. skewed clocks

    /// Samples 8 days old and 10 minutes ahead are refused one by one through the real socket; the rest is stored.
    /// (IngestSessionTests.refusedSamplesAreDroppedButTheBatchIsAcked covers this in memory only.)
    @Test(.timeLimit(.minutes(3)))
    func skewedTimestampsAreRefusedOneByOne() async throws {
        let env = try await HostileHub.start(bots: ["skewed"])
        defer { env.stopAll() }
        try await Task.sleep(for: .seconds(2))   // the good bot is streaming
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let day: Int64 = 86_400_000
        let stamps: [Int64] = [now - 8 * day, now - 3_600_000, now, now + 60_000, now + 600_000]
        let payload = BatchPayload(series: [Series(name: "daily_pnl", kind: .gauge, timestamps: stamps, values: [1, 2, 3, 4, 5])])
        let batch = try BatchFrame.make(bootEpoch: 91, sequence: 1, payload: payload)
        let hello = Hello(botID: "skewed", token: "secret", agentVersion: "raw", bootEpoch: 91, lastAckedSequence: 0)
        let outcome = try await Self.sendAndAwaitAck(env.hub.agentURL, hello: hello, batch: batch)
        #expect(outcome == .stored)

        let skewed = try await storedBatches(env.db).filter { $0.key.bot == "skewed" }
        #expect(skewed.count == 1 && skewed.keys.first?.count == 3 && skewed.keys.first?.sum == 9, "\(skewed)")
        let streams: [Int64] = try await env.db.withClient { client in
            var out: [Int64] = []
            let rows = try await client.query("""
                SELECT i.samples_sent, i.samples_stored FROM ingest_streams i JOIN bots b ON b.id = i.bot_id WHERE b.name = 'skewed'
                """, logger: Logger(label: "test"))
            for try await (sent, stored) in rows.decode((Int64, Int64).self) { out += [sent, stored] }
            return out
        }
        #expect(streams == [5, 3])
        let (_, metrics) = try await api("GET", port: env.hub.port, path: "/metrics")
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("fleetwatch_samples_refused_total ") }
        let refused = line.flatMap { Double($0.split(separator: " ").last ?? "") }
        #expect(refused == 2, "\(line ?? "no fleetwatch_samples_refused_total")")
        try await env.finish(expectUninterrupted: true)
    }

    /// Hello, wait for the welcome, one batch, wait for its ack; the ack's outcome (nil: closed without one).
    static func sendAndAwaitAck(_ url: String, hello: Hello, batch: BatchFrame) async throws -> Ack.Outcome? {
        var logger = Logger(label: "raw")
        logger.logLevel = .critical
        let acked = AckBox()
        _ = try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 24), logger: logger) { inbound, outbound, _ in
            try await outbound.write(.binary(Frame.hello(hello).encoded()))
            var sent = false
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .binary(let bytes) = message, let frame = try? Frame.decode(bytes) else { continue }
                switch frame {
                case .welcome:
                    if !sent {
                        try await outbound.write(.binary(Frame.batch(batch).encoded()))
                        sent = true
                    }
                case .ack(let ack):
                    acked.set(ack.outcome)
                    return
                default:
                    continue
                }
            }
        }
        return acked.value
    }

    // MARK: helpers

    /// PostgreSQL holds exactly `sealed` for `bot`: same (epoch, seq), same samples, one row each, and the
    /// batch ledger counts them once (other bots of the test database are ignored).
    static func expectStoredExactlyOnce(_ sealed: [SealedLedger.Entry], bot: String, _ db: TestDatabase) async throws {
        let stored = try await storedBatches(db).filter { $0.key.bot == bot }
        #expect(sealed.count > 0)
        #expect(Set(sealed).count == sealed.count)
        let missing = Set(sealed).subtracting(stored.keys).count
        let unexpected = Set(stored.keys).subtracting(sealed).count
        #expect(missing == 0 && unexpected == 0, "\(bot): \(missing) sealed batches missing, \(unexpected) unexpected")
        #expect(stored.values.allSatisfy { $0 == 1 }, "a batch of \(bot) was stored more than once")
        let ledgerBatches: Int64 = try await db.withClient { client in
            let rows = try await client.query("""
                SELECT COALESCE(sum(i.batches), 0)::int8 FROM ingest_streams i JOIN bots b ON b.id = i.bot_id WHERE b.name = \(bot)
                """, logger: Logger(label: "test"))
            var total: Int64 = -1
            for try await n in rows.decode(Int64.self) { total = n }
            return total
        }
        #expect(ledgerBatches == Int64(sealed.count), "\(bot): batch ledger \(ledgerBatches), sealed \(sealed.count)")
    }
}

/// The outcome of an ack, handed out of a WebSocket handler.
final class AckBox: @unchecked Sendable {
    private let lock = NSLock()
    private var outcome: Ack.Outcome?

    func set(_ value: Ack.Outcome) { lock.withLock { outcome = value } }
    var value: Ack.Outcome? { lock.withLock { outcome } }
}

/// A hub on a fresh database, its memory watched, with the bot `good` streaming through an in-process agent.
struct HostileHub: Sendable {
    let db: TestDatabase
    let hub: HubUnderTest
    let rss: RSSWatch
    let good: GoodBot

    /// Registers `good` and `bots` (token "secret"), starts the hub (with `config` as its JSON file, if any)
    /// and the good bot (recording `wideMetrics` extra gauges each round).
    static func start(bots: [String] = [], config: String? = nil, wideMetrics: Int = 0,
                      handler: (any EmergencyHandler)? = nil) async throws -> HostileHub {
        let db = try await TestDatabase.create()
        try await registerBots(["good"] + bots, token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        var extra: [String] = []
        if let config {
            let path = NSTemporaryDirectory() + "/\(db.url.database)-hostile.json"
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            extra = ["--config", path]
        }
        try await hub.start(extra: extra)
        let rss = RSSWatch(pid: hub.process!.pid)
        rss.start()
        let good = try await GoodBot.start(hub: hub, wide: wideMetrics, handler: handler)
        return HostileHub(db: db, hub: hub, rss: rss, good: good)
    }

    /// Stops the good bot and checks it came through whole, then that the hub is running, ready and was
    /// never big. `expectUninterrupted`: the good bot's connection must never have been closed either.
    func finish(expectUninterrupted: Bool) async throws {
        // An attack the hub ends at once must not end the check before the good bot has streamed a while.
        _ = try await eventually(.seconds(30)) { good.roundsSoFar.current >= 5 }
        good.streaming.cancel()
        let rounds = await good.streaming.value
        #expect(rounds >= 5, "the good bot streamed only \(rounds) rounds")
        let drained = try await eventually(.seconds(60)) { await EndToEndTests.drained([good.agent]) }
        let status = await good.agent.status
        #expect(drained, "the good bot's batches were not all acknowledged: \(status)")
        if expectUninterrupted {
            #expect(status.connected && status.lastCloseCode == nil && status.lastError == nil,
                    "the good bot lost its connection: \(status)")
            // IngestSession logs "bot <name> connected from …" at info level for every accepted hello.
            let connections = hub.log.components(separatedBy: "bot good connected from").count - 1
            #expect(connections == 1, "the good bot connected \(connections) times")
        }
        let sealed = good.ledger.all
        good.run.cancel()
        try await HostileInputExtraTests.expectStoredExactlyOnce(sealed, bot: "good", db)
        #expect(hub.process?.isRunning == true, "the hub exited: \(hub.log.suffix(3000))")
        #expect(try await HubUnderTest.httpGet(port: hub.port, path: "/health/ready") == 200)
        let peak = rss.stop()
        print("hostile-input: hub RSS peak \(peak / 1024) MiB")
        #expect(peak > 0 && peak < HostileInputExtraTests.rssLimitKiB, "the hub's RSS reached \(peak / 1024) MiB")
    }

    /// Stops everything this hub started (safe to call after `finish`).
    func stopAll() {
        good.streaming.cancel()
        good.run.cancel()
        _ = rss.stop()
        let hub = self.hub
        Task { await hub.kill(SIGTERM) }
    }
}

/// The well-behaved bot: a trading round every 50 ms, flushed by hand, every sealed batch in its ledger.
struct GoodBot: Sendable {
    let agent: MonitorAgent
    let ledger: SealedLedger
    let run: Task<Void, any Error>
    /// Ends when cancelled, with the number of rounds recorded.
    let streaming: Task<Int, Never>
    /// Rounds recorded so far.
    let roundsSoFar: RoundCount

    static func start(hub: HubUnderTest, bot: String = "good", wide: Int = 0,
                      handler: (any EmergencyHandler)? = nil) async throws -> GoodBot {
        let ledger = SealedLedger()
        let agent = try EndToEndTests.agent(bot, hub: hub.agentURL, ledger: ledger)
        if let handler { await agent.setEmergencyHandler(handler) }
        let run = Task { try await agent.run() }
        let count = RoundCount(0)
        let streaming = Task { () -> Int in
            var round = 0
            while !Task.isCancelled {
                for i in 0..<wide { agent.gauge("load_\(i)").set(Double((round + i) % 97)) }
                await EndToEndTests.trade(agent, round: round)
                round += 1
                count.set(round)
                try? await Task.sleep(for: .milliseconds(50))
            }
            return round
        }
        return GoodBot(agent: agent, ledger: ledger, run: run, streaming: streaming, roundsSoFar: count)
    }
}

/// A round counter the streaming task and the checks share.
final class RoundCount: Sendable {
    private let value: Atomic<Int>
    init(_ value: Int) { self.value = Atomic(value) }
    func set(_ v: Int) { value.store(v, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}

/// Samples a process's resident memory every 100 ms from /proc; `stop` also reads the kernel's high-water mark.
final class RSSWatch: @unchecked Sendable {
    let pid: pid_t
    private let peakKiB = Mutex<Int>(0)
    private let sampler = Mutex<Task<Void, Never>?>(nil)

    init(pid: pid_t) { self.pid = pid }

    /// A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), nil once the process is gone.
    static func statusKiB(pid: pid_t, _ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let value = line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces)
            return Int(value.split(separator: " ").first ?? "")
        }
        return nil
    }

    func start() {
        let task = Task { [self] in
            while !Task.isCancelled {
                self.sample()
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        sampler.withLock { $0 = task }
    }

    func sample() {
        guard let kib = Self.statusKiB(pid: pid, "VmRSS") else { return }
        peakKiB.withLock { $0 = max($0, kib) }
    }

    /// Stops sampling; the largest RSS seen, sampled or the kernel's high-water mark, in KiB.
    func stop() -> Int {
        sampler.withLock { $0?.cancel() }
        sample()
        let hwm = Self.statusKiB(pid: pid, "VmHWM") ?? 0
        return max(peakKiB.withLock { $0 }, hwm)
    }
}

/// A TCP connection to the hub on loopback with non-blocking I/O. Waits are short sleeps, so a test never
/// holds one of the machine's few cooperative threads.
final class RawSocket: @unchecked Sendable {
    enum ReadResult: Equatable, Sendable { case data([UInt8]), eof, failed(Int32), timedOut }

    let fd: Int32
    private var isOpen = true

    /// Connects to 127.0.0.1:`port`; `receiveBufferBytes` shrinks the kernel's receive buffer first; `source`
    /// (another loopback address, e.g. 127.0.0.2) makes the connection come from there.
    init(port: Int, receiveBufferBytes: Int32? = nil, source: String? = nil) throws {
        _ = signal(SIGPIPE, SIG_IGN)   // a write to a connection the hub closed must fail, not kill the tests
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        if var size = receiveBufferBytes {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                close(fd)
                throw TestSupportError("cannot bind to \(source): errno \(errno)")
            }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let error = errno
            close(fd)
            throw TestSupportError("cannot connect to port \(port): errno \(error)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
    }

    /// Sends all of `bytes`; false when the peer closed or reset the connection, or `deadline` passed.
    func write(_ bytes: [UInt8], until deadline: ContinuousClock.Instant) async -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buffer in send(fd, buffer.baseAddress! + offset, buffer.count - offset, 0) }
            let error = errno
            if n > 0 {
                offset += n
                continue
            }
            guard n < 0, error == EAGAIN || error == EINTR, ContinuousClock.now < deadline, !Task.isCancelled else { return false }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return true
    }

    /// Whatever arrives first (up to `max` bytes), the end of the stream, an error, or nothing by `deadline`.
    func read(max: Int = 65_536, until deadline: ContinuousClock.Instant) async -> ReadResult {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            let error = errno
            if n > 0 { return .data(Array(buffer[0..<n])) }
            if n == 0 { return .eof }
            guard error == EAGAIN || error == EINTR else { return .failed(error) }
            if ContinuousClock.now >= deadline || Task.isCancelled { return .timedOut }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    func disconnect() {
        guard isOpen else { return }
        isOpen = false
        close(fd)
    }

    deinit { disconnect() }

    /// Index just past the blank line ending an HTTP head, nil while incomplete.
    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }
}

/// A WebSocket client written by hand over `RawSocket`, to send what no library would: masked client frames
/// of any shape, in any number, and to read (or not) what the hub sends.
final class RawWebSocket: @unchecked Sendable {
    struct ServerFrame: Sendable { let fin: Bool; let opcode: UInt8; let payload: [UInt8] }

    /// How the hub ended the connection: a close frame (its code), end of stream, reset, or not by the deadline.
    enum CloseOutcome: Equatable, Sendable { case closeFrame(UInt16?), eof, reset(Int32), timedOut }

    enum Incoming: Sendable { case frame(ServerFrame), ended(CloseOutcome) }

    static let maskKey: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    let socket: RawSocket
    private var pending: [UInt8]

    private init(socket: RawSocket, pending: [UInt8]) {
        self.socket = socket
        self.pending = pending
    }

    /// Opens `path` with a hand-written upgrade request; throws unless the hub answers 101.
    static func open(port: Int, path: String, headers: [(String, String)] = [],
                     receiveBufferBytes: Int32? = nil) async throws -> RawWebSocket {
        let socket = try RawSocket(port: port, receiveBufferBytes: receiveBufferBytes)
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let deadline = ContinuousClock.now + .seconds(10)
        guard await socket.write(Array(request.utf8), until: deadline) else {
            socket.disconnect()
            throw TestSupportError("upgrade request for \(path) not sent")
        }
        var received: [UInt8] = []
        while RawSocket.headerEnd(received) == nil {
            guard case .data(let bytes) = await socket.read(until: deadline) else {
                socket.disconnect()
                throw TestSupportError("no upgrade answer for \(path): \(String(decoding: received, as: UTF8.self))")
            }
            received += bytes
        }
        let end = RawSocket.headerEnd(received)!
        let head = String(decoding: received[0..<end], as: UTF8.self)
        let statusLine = head.components(separatedBy: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[1] == "101" else {
            socket.disconnect()
            throw TestSupportError("upgrade of \(path) refused: \(head)")
        }
        return RawWebSocket(socket: socket, pending: Array(received[end...]))
    }

    /// A client frame: masked, as RFC 6455 requires of clients.
    static func frame(opcode: UInt8, fin: Bool, payload: [UInt8]) -> [UInt8] {
        let first: UInt8 = (fin ? 0x80 : 0x00) | opcode
        var out: [UInt8] = [first]
        let n = payload.count
        if n < 126 {
            out.append(0x80 | UInt8(n))
        } else if n <= 0xFFFF {
            out.append(0x80 | 126)
            out.append(UInt8(n >> 8))
            out.append(UInt8(n & 0xFF))
        } else {
            out.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((n >> shift) & 0xFF)) }
        }
        out += maskKey
        let start = out.count
        out += payload
        // Eight bytes at a time: a byte loop over a megabyte took a tenth of a second in a debug build, long enough
        // for tests that send many big frames to hold the test process's threads away from other tests' agents.
        let key = maskKey.withUnsafeBytes { k in UInt64(k.loadUnaligned(as: UInt32.self)) | UInt64(k.loadUnaligned(as: UInt32.self)) << 32 }
        out.withUnsafeMutableBytes { b in
            var i = 0
            while i + 8 <= n {
                let word = b.loadUnaligned(fromByteOffset: start + i, as: UInt64.self) ^ key
                b.storeBytes(of: word, toByteOffset: start + i, as: UInt64.self)
                i += 8
            }
            while i < n {
                b[start + i] ^= maskKey[i & 3]
                i += 1
            }
        }
        return out
    }

    func send(opcode: UInt8, fin: Bool, payload: [UInt8], timeout: Duration = .seconds(10)) async -> Bool {
        await socket.write(Self.frame(opcode: opcode, fin: fin, payload: payload), until: ContinuousClock.now + timeout)
    }

    /// The next frame from the hub, or how the connection ended (`.timedOut` once `deadline` passes).
    func nextFrame(until deadline: ContinuousClock.Instant) async -> Incoming {
        while true {
            if let frame = parsePending() { return .frame(frame) }
            switch await socket.read(until: deadline) {
            case .data(let bytes): pending += bytes
            case .eof: return .ended(.eof)
            case .failed(let error): return .ended(.reset(error))
            case .timedOut: return .ended(.timedOut)
            }
        }
    }

    /// Skips data frames until the hub closes: its close frame's code, or how the stream ended.
    func awaitClose(until deadline: ContinuousClock.Instant) async -> CloseOutcome {
        while true {
            switch await nextFrame(until: deadline) {
            case .ended(let outcome):
                return outcome
            case .frame(let f) where f.opcode == 0x8:
                return .closeFrame(f.payload.count >= 2 ? UInt16(f.payload[0]) << 8 | UInt16(f.payload[1]) : nil)
            case .frame:
                continue
            }
        }
    }

    /// A close (or end of stream) that has already arrived, without waiting.
    func closeIfArrived() async -> CloseOutcome? {
        let outcome = await awaitClose(until: ContinuousClock.now)
        return outcome == .timedOut ? nil : outcome
    }

    private func parsePending() -> ServerFrame? {
        guard pending.count >= 2 else { return nil }
        let fin = pending[0] & 0x80 != 0
        let opcode = pending[0] & 0x0F
        let masked = pending[1] & 0x80 != 0
        var length = Int(pending[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard pending.count >= 4 else { return nil }
            length = Int(pending[2]) << 8 | Int(pending[3])
            offset = 4
        } else if length == 127 {
            guard pending.count >= 10 else { return nil }
            length = 0
            for i in 2..<10 { length = length << 8 | Int(pending[i]) }
            offset = 10
        }
        var key: [UInt8] = []
        if masked {
            guard pending.count >= offset + 4 else { return nil }
            key = Array(pending[offset..<(offset + 4)])
            offset += 4
        }
        guard length >= 0, pending.count >= offset + length else { return nil }
        var payload = Array(pending[offset..<(offset + length)])
        if masked { for i in payload.indices { payload[i] ^= key[i & 3] } }
        pending.removeFirst(offset + length)
        return ServerFrame(fin: fin, opcode: opcode, payload: payload)
    }
}
