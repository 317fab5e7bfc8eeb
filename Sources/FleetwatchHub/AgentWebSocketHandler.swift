import FleetwatchIngest
import FleetwatchProtocol
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// Bridges one WebSocket to an `IngestSession`: messages and heartbeat ticks are handled in one task,
/// in order, so batches of one connection are stored and acknowledged in sequence.
struct AgentWebSocketHandler: Sendable {
    let configuration: IngestConfiguration
    let store: any IngestStore
    let counters: IngestCounters
    let logger: Logger
    let onStored: (@Sendable (BotSession, ValidatedBatch) -> Void)?
    let commands: (any CommandChannel)?
    let connections: LiveConnections

    enum Event: Sendable {
        case message(ByteBuffer)
        case push(Frame)
        case close(CloseCode, String)
        case text
        case tick
        case ended((any Error)?)
    }

    func handle(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, remote: String) async throws {
        let session = IngestSession(configuration: configuration, store: store, remote: remote, logger: logger,
                                    counters: counters, commands: commands, onStored: onStored)
        let (events, continuation) = AsyncStream.makeStream(of: Event.self)
        let maxMessage = configuration.maxFrameBytes * 2
        let tick = configuration.heartbeatInterval / 4
        let reader = Task {
            do {
                for try await message in inbound.messages(maxSize: maxMessage) {
                    switch message {
                    case .binary(let bytes): continuation.yield(.message(bytes))
                    case .text: continuation.yield(.text)
                    }
                }
                continuation.yield(.ended(nil))
            } catch {
                continuation.yield(.ended(error))
            }
        }
        let ticker = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: tick)
                continuation.yield(.tick)
            }
        }
        defer {
            reader.cancel()
            ticker.cancel()
        }
        var registered: BotSession?
        do {
        loop: for await event in events {
            let outputs: [IngestOutput]
            switch event {
            case .message(let bytes):
                outputs = await session.handle(bytes)
                if registered == nil, let s = session.session {
                    registered = s
                    await connections.add(bot: s.botName, botID: s.botID, connectionID: s.connectionID,
                                          push: { continuation.yield(.push($0)) }, close: { continuation.yield(.close($0, $1)) })
                }
            case .push(let frame): outputs = [.send(frame)]
            case .close(let code, let reason):
                // Every message before this one was handled: its batch stored and acknowledged.
                logger.notice("closing bot \(registered?.botName ?? "?") from \(remote): \(code): \(reason)")
                try? await outbound.close(.unknown(code.rawValue), reason: reason)
                break loop
            case .text: outputs = session.handleText()
            case .tick: outputs = session.tick()
            case .ended(let error):
                if let error { logger.info("agent connection from \(remote) ended: \(error)") }
                break loop
            }
            for output in outputs {
                switch output {
                case .send(let frame):
                    try await outbound.write(.binary(frame.encoded()))
                case .close(let code, let reason):
                    try? await outbound.close(.unknown(code.rawValue), reason: String(reason.utf8.prefix(120)) ?? "")
                    break loop
                }
            }
        }
        } catch {
            logger.info("agent connection from \(remote) failed: \(error)")
        }
        continuation.finish()
        if let s = registered { await connections.remove(bot: s.botName, connectionID: s.connectionID) }
        await session.finish()
    }
}
