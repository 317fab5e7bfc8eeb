import HummingbirdCore
import Logging
import NIOCore
import Synchronization

/// Guards a new connection until its first request head is complete — the window in which Hummingbird's own
/// HTTP limits do not apply yet (its idle timeout starts after the first request; on the WebSocket-upgrade
/// channel a header overflow would leave the socket open). A head not complete within `timeout` gets
/// 408 and is closed; a head larger than `maxHeadBytes` gets 431 and is closed. Then the guard removes itself:
/// later requests are held to the HTTP decoder's limits and the idle timeout, WebSockets to their pings.
/// Sits after TLS (it sees plain bytes and its answers are encrypted) and before the HTTP decoder.
final class FirstRequestGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let maxHeadBytes: Int
    private let timeout: TimeAmount
    private var seen = 0
    /// The last three bytes seen, to find "\r\n\r\n" across reads.
    private var tail: [UInt8] = []
    private var timer: Scheduled<Void>?
    private var done = false

    init(maxHeadBytes: Int, timeout: TimeAmount) {
        self.maxHeadBytes = maxHeadBytes
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            handler.refuse(context: context, status: "408 Request Timeout", message: "no complete request within the time allowed")
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        let bytes = unwrapInboundIn(data)
        if let end = headEnd(in: bytes) {
            guard seen + end <= maxHeadBytes else { return tooLarge(context) }
            timer?.cancel()
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        seen += bytes.readableBytes
        guard seen <= maxHeadBytes else { return tooLarge(context) }
        context.fireChannelRead(data)
    }

    /// Offset just past "\r\n\r\n" in `bytes`, counting the bytes of earlier reads kept in `tail`.
    private func headEnd(in bytes: ByteBuffer) -> Int? {
        let view = bytes.readableBytesView
        var last = tail
        var offset = 0
        for byte in view {
            offset += 1
            last.append(byte)
            if last.count > 4 { last.removeFirst(last.count - 4) }
            if last == [13, 10, 13, 10] { return offset }
        }
        tail = Array(last.suffix(3))
        return nil
    }

    private func tooLarge(_ context: ChannelHandlerContext) {
        refuse(context: context, status: "431 Request Header Fields Too Large",
               message: "request head larger than \(maxHeadBytes) bytes (hub.max_header_bytes)")
    }

    private func refuse(context: ChannelHandlerContext, status: String, message: String) {
        guard !done else { return }
        done = true
        timer?.cancel()
        let body = message + "\n"
        let response = "HTTP/1.1 \(status)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n" + body
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: response))).whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// A server child channel with the per-address limit and `FirstRequestGuard` in front of `base`'s HTTP handlers.
struct GuardedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let maxHeadBytes: Int
    let timeout: TimeAmount
    let addresses: AddressConnections

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers([PerAddressLimit(addresses),
                                                             FirstRequestGuard(maxHeadBytes: maxHeadBytes, timeout: timeout)])
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Open connections per client address, shared by every connection of the listener.
final class AddressConnections: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    let maxPerAddress: Int
    /// Trusted proxies carry every client behind them: they are not limited.
    let exempt: TrustedProxies

    init(maxPerAddress: Int, exempt: TrustedProxies = TrustedProxies()) {
        self.maxPerAddress = maxPerAddress
        self.exempt = exempt
    }

    /// Counts a new connection from `address`; false (and not counted) when the address is at its limit.
    func open(_ address: String) -> Bool {
        if exempt.contains(address) { return true }
        return counts.withLock { c in
            let n = c[address, default: 0]
            guard n < maxPerAddress else { return false }
            c[address] = n + 1
            return true
        }
    }

    func close(_ address: String) {
        if exempt.contains(address) { return }
        counts.withLock { c in
            let n = c[address, default: 0] - 1
            c[address] = n > 0 ? n : nil
        }
    }
}

/// Closes a connection at once when its address already holds `hub.max_connections_per_address`; stays in the
/// pipeline for the connection's life to count it.
final class PerAddressLimit: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let connections: AddressConnections
    private var address: String?

    init(_ connections: AddressConnections) { self.connections = connections }

    func handlerAdded(context: ChannelHandlerContext) {
        let key = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if connections.open(key) {
            address = key
        } else {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let address { connections.close(address) }
        address = nil
    }
}
