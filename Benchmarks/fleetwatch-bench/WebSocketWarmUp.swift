import Logging
import WSClient

/// One WebSocket connection to the hub at `port`, closed at once, before a benchmark starts its agents together: the
/// Swift runtime then builds the WebSocket client's generic type metadata on one thread. Built by two event-loop
/// threads at once, it crashed the ingest benchmark once (SIGSEGV in `swift_checkMetadataState`, under
/// `configureUpgradableHTTPClientPipeline`, in CI on 2026-12-08).
enum WebSocketWarmUp {
    static func connect(port: Int, logger: Logger) async {
        _ = try? await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/agent/v1", configuration: .init(), logger: logger) { _, outbound, _ in
            try await outbound.close(.normalClosure, reason: nil)
        }
    }
}
