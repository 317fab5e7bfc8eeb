import NIOCore
import NIOPosix

/// A keep-alive HTTP/1.1 connection for the remote-write senders: it writes prepared requests one at a time and
/// reads only each answer's status line and `Content-Length`, so the senders cost the machine far less than a
/// general HTTP client would, and the receiver measured gets the cores (as fleetwatch's senders, which write
/// prepared WebSocket frames).
struct RawHTTPConnection {
    /// One answer: its status code and body.
    struct Answer {
        var status: Int
        var body: String
    }

    static func connect(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// The head of a POST of `length` body bytes to `path`, with `headers`.
    static func head(path: String, port: Int, length: Int, headers: [(String, String)]) -> ByteBuffer {
        var text = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Length: \(length)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return ByteBuffer(string: text)
    }

    /// Bytes received and not yet taken as an answer.
    private var pending = ByteBuffer()

    /// The next whole answer from `inbound`.
    mutating func answer(from inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) async throws -> Answer {
        while true {
            if let answer = try take() { return answer }
            guard var more = try await inbound.next() else { throw BenchFailure("the receiver closed the connection") }
            pending.writeBuffer(&more)
        }
    }

    private mutating func take() throws -> Answer? {
        let view = pending.readableBytesView
        guard let end = view.firstRange(of: [13, 10, 13, 10]) else { return nil }
        let head = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw BenchFailure("not an HTTP answer: \(head.prefix(200))")
        }
        var length = 0
        for line in lines.dropFirst() {
            let lower = line.lowercased()
            if lower.hasPrefix("content-length:") {
                guard let n = Int(lower.dropFirst(15).trimmingCharacters(in: .whitespaces)), n >= 0 else {
                    throw BenchFailure("an answer with a Content-Length the benchmark cannot read: \(head.prefix(200))")
                }
                length = n
            }
            if lower.hasPrefix("transfer-encoding:") { throw BenchFailure("a chunked answer (not read by the benchmark's sender): \(head.prefix(200))") }
        }
        let headBytes = end.upperBound - view.startIndex
        guard pending.readableBytes >= headBytes + length else { return nil }
        pending.moveReaderIndex(forwardBy: headBytes)
        let body = pending.readString(length: length) ?? ""
        pending.discardReadBytes()
        return Answer(status: status, body: body)
    }
}
