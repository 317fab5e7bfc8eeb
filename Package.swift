// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "fleetwatch",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "FleetwatchProtocol", targets: ["FleetwatchProtocol"]),
        .library(name: "FleetwatchAgent", targets: ["FleetwatchAgent"]),
        .library(name: "FleetwatchHub", targets: ["FleetwatchHub"]),
        .executable(name: "monitor-hub", targets: ["MonitorHub"]),
        .executable(name: "fleetwatch-simbot", targets: ["SimBot"]),
        .executable(name: "monitor-agent", targets: ["MonitorAgentSidecar"]),
        .executable(name: "fleetwatch-fuzz-decode", targets: ["FuzzDecode"]),
        .executable(name: "fleetwatch-fuzz-parsers", targets: ["FuzzParsers"]),
        .executable(name: "fleetwatch-bench", targets: ["FleetwatchBench"]),
        .executable(name: "fleetwatch-faults", targets: ["FleetwatchFaults"]),
        .library(name: "fleetwatch_malloc_count", type: .dynamic, targets: ["CMallocCount"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Wire protocol shared by agent and hub: frames, sample batches, compression. No server code.
        .target(
            name: "FleetwatchProtocol",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // The in-process agent library a bot links.
        .target(
            name: "FleetwatchAgent",
            dependencies: [
                "FleetwatchProtocol",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The pure life of an emergency command: typed states and transitions, no I/O.
        .target(
            name: "FleetwatchControl",
            dependencies: ["FleetwatchProtocol"]
        ),
        // The ordered SQL migrations and review views, embedded into the hub binary.
        .target(
            name: "FleetwatchSchema",
            path: "schema",
            resources: [
                .embedInCode("migrations/V0001__foundation.sql"),
                .embedInCode("migrations/V0002__alerts.sql"),
                .embedInCode("migrations/V0003__commands.sql"),
                .embedInCode("migrations/V0004__review.sql"),
                .embedInCode("migrations/V0005__dashboard.sql"),
                .embedInCode("migrations/V0006__bot_isolation.sql"),
                .embedInCode("migrations/V0007__fleet_profile.sql"),
                .embedInCode("migrations/V0008__analyst_password.sql"),
                .embedInCode("migrations/V0009__minute_chunks.sql"),
                .embedInCode("migrations/V0010__review_fixes.sql"),
                .embedInCode("migrations/V0011__row_ends.sql"),
                .embedInCode("migrations/V0012__merge_compression.sql"),
                .embedInCode("migrations/V0013__lease_order.sql"),
            ]
        ),
        // Storage: PostgreSQL schema migrations and every query, foldered by feature.
        .target(
            name: "FleetwatchStorage",
            dependencies: [
                "FleetwatchProtocol", "FleetwatchSchema", "FleetwatchIngest", "FleetwatchAlerting", "FleetwatchControl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Processes: spawning programs without pipes, free loopback ports, the embedded PostgreSQL cluster.
        .target(
            name: "FleetwatchProcesses",
            dependencies: ["FleetwatchProtocol", "FleetwatchStorage", .product(name: "Logging", package: "swift-log")]
        ),
        // Ingest: the agent WebSocket endpoint, session state machine, authentication, limits.
        .target(
            name: "FleetwatchIngest",
            dependencies: [
                "FleetwatchProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Alerting core: threshold profiles, rule evaluation, alert life. Pure: no I/O.
        .target(
            name: "FleetwatchAlerting",
            dependencies: ["FleetwatchProtocol", .product(name: "Logging", package: "swift-log")]
        ),
        // Alert channels and the fan-out dispatcher with retries and the delivery ledger.
        .target(
            name: "FleetwatchNotify",
            dependencies: [
                "FleetwatchAlerting", "FleetwatchProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // glibc's allocator figures (`mallinfo2`, in <malloc.h>, which Swift's Glibc module leaves out).
        .target(name: "CAllocatorFigures"),
        // App wiring: configuration, HTTP server, services.
        .target(
            name: "FleetwatchHub",
            dependencies: [
                "FleetwatchProtocol", "FleetwatchIngest", "FleetwatchStorage", "FleetwatchProcesses", "FleetwatchSchema",
                "FleetwatchAlerting", "FleetwatchNotify", "FleetwatchControl", "CAllocatorFigures",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The dashboard's pages, embedded in the binary.
            resources: [
                .embedInCode("Dashboard/index.html"),
                .embedInCode("Dashboard/login.html"),
                .embedInCode("Dashboard/core.js"),
                .embedInCode("Dashboard/dom.js"),
                .embedInCode("Dashboard/format.js"),
                .embedInCode("Dashboard/api.js"),
                .embedInCode("Dashboard/model.js"),
                .embedInCode("Dashboard/live.js"),
                .embedInCode("Dashboard/alert-list.js"),
                .embedInCode("Dashboard/fleet.js"),
                .embedInCode("Dashboard/charts.js"),
                .embedInCode("Dashboard/bot-thresholds.js"),
                .embedInCode("Dashboard/bot-commands.js"),
                .embedInCode("Dashboard/bot-dialogs.js"),
                .embedInCode("Dashboard/bot.js"),
                .embedInCode("Dashboard/alerts.js"),
                .embedInCode("Dashboard/app.js"),
                .embedInCode("Dashboard/login.js"),
                .embedInCode("Dashboard/app.css"),
            ]
        ),
        // Test doubles shipped as a target: manual clock, in-memory stores, private PostgreSQL.
        .target(
            name: "FleetwatchTestSupport",
            dependencies: [
                "FleetwatchProtocol", "FleetwatchAgent", "FleetwatchIngest", "FleetwatchStorage", "FleetwatchProcesses",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .executableTarget(
            name: "MonitorHub",
            dependencies: [
                "FleetwatchHub", "FleetwatchProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Hub/monitor-hub"
        ),
        .executableTarget(
            name: "SimBot",
            dependencies: [
                "FleetwatchAgent", "FleetwatchProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Agent/simbot"
        ),
        .executableTarget(
            name: "MonitorAgentSidecar",
            dependencies: [
                "FleetwatchAgent", "FleetwatchProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Agent/monitor-agent"
        ),
        // Fuzzing the wire decoders: libFuzzer target with -DFUZZING (scripts/fuzz), corpus replayer without.
        .executableTarget(
            name: "FuzzDecode",
            dependencies: ["FuzzDriver", "FleetwatchProtocol", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/decode"
        ),
        // Fuzzing the configuration file, command handling (frames, command log, journal) and stop/resume bodies:
        // the first input byte picks the parser. Same two builds as FuzzDecode.
        .executableTarget(
            name: "FuzzParsers",
            dependencies: ["FuzzDriver", "FleetwatchHub", "FleetwatchAgent", "FleetwatchProtocol", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/parsers"
        ),
        // The fuzz targets' shared libFuzzer driver and corpus replayer.
        .target(name: "FuzzDriver", path: "Fuzz/driver"),
        .executableTarget(
            name: "FleetwatchBench",
            dependencies: [
                "FleetwatchProtocol", "FleetwatchAgent", "FleetwatchStorage", "FleetwatchProcesses", "FleetwatchTestSupport", "FleetwatchSchema",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/fleetwatch-bench"
        ),
        // The fault suite: real hubs, agents, PostgreSQL and a fault proxy; counts every batch (scripts/faults).
        .executableTarget(
            name: "FleetwatchFaults",
            dependencies: [
                "FleetwatchProtocol", "FleetwatchAgent", "FleetwatchStorage", "FleetwatchProcesses", "FleetwatchTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Faults/runner"
        ),
        // LD_PRELOAD shim that counts allocations for the record-call benchmark.
        .target(name: "CMallocCount", path: "Benchmarks/malloc-count"),
        .testTarget(
            name: "FleetwatchProtocolTests",
            dependencies: ["FleetwatchProtocol", "FleetwatchTestSupport"],
            resources: [.copy("Golden")]
        ),
        .testTarget(
            name: "FleetwatchAlertingTests",
            dependencies: ["FleetwatchAlerting", "FleetwatchProtocol", "FleetwatchTestSupport"]
        ),
        .testTarget(
            name: "FleetwatchNotifyTests",
            dependencies: ["FleetwatchNotify", "FleetwatchAlerting", "FleetwatchProtocol"]
        ),
        .testTarget(
            name: "FleetwatchControlTests",
            dependencies: ["FleetwatchControl", "FleetwatchProtocol"]
        ),
        .testTarget(
            name: "FleetwatchIngestTests",
            dependencies: ["FleetwatchIngest", "FleetwatchProtocol", "FleetwatchTestSupport"]
        ),
        .testTarget(
            name: "FleetwatchAgentTests",
            dependencies: ["FleetwatchAgent", "FleetwatchTestSupport"]
        ),
        .testTarget(
            name: "FleetwatchHubTests",
            dependencies: ["FleetwatchControl", "FleetwatchHub", "FleetwatchIngest", "FleetwatchStorage", "FleetwatchTestSupport"]
        ),
        // Against a real PostgreSQL (FLEETWATCH_TEST_DATABASE_URL, which scripts/test provides), in-process: stores,
        // the ledger, the review, the dashboards' SQL and the hub's routes.
        .testTarget(
            name: "FleetwatchPostgresTests",
            dependencies: [
                "FleetwatchControl", "FleetwatchHub", "FleetwatchIngest", "FleetwatchStorage", "FleetwatchSchema", "FleetwatchTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        // End to end: the built programs as processes, a browser, mail and webhook receivers, Prometheus.
        .testTarget(
            name: "FleetwatchEndToEndTests",
            dependencies: [
                "FleetwatchControl", "FleetwatchHub", "FleetwatchAgent", "FleetwatchStorage", "FleetwatchProcesses", "FleetwatchTestSupport",
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)
