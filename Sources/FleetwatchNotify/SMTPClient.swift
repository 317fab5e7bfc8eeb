import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A small SMTP client: plain, STARTTLS or implicit TLS, optional AUTH PLAIN, one message per connection.
struct SMTPClient {
    enum Security: String, Sendable { case plain, starttls, tls }

    let host: String
    let port: Int
    let security: Security
    let username: String?
    let password: String?
    let verifyCertificate: Bool
    let timeout: Duration

    /// Sends `message` (headers and body, CRLF line ends) from `from` to `to`.
    func send(from: String, to: [String], message: String) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.exchange(from: from, to: to, message: message) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw NotifyError("SMTP \(host):\(port) did not finish within \(timeout)", retryable: true)
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func tlsHandler() throws -> NIOSSLClientHandler {
        var tls = TLSConfiguration.makeClientConfiguration()
        if !verifyCertificate { tls.certificateVerification = .none }
        return try NIOSSLClientHandler(context: NIOSSLContext(configuration: tls), serverHostname: verifyCertificate ? host : nil)
    }

    private func exchange(from: String, to: [String], message: String) async throws {
        let implicitTLS = security == .tls
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: host, port: port) { ch in
                    ch.eventLoop.makeCompletedFuture {
                        if implicitTLS { try ch.pipeline.syncOperations.addHandler(try self.tlsHandler()) }
                        try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineDecoder()))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch)
                    }
                }
        } catch {
            throw NotifyError("SMTP \(host):\(port) unreachable: \(error)", retryable: true)
        }
        try await channel.executeThenClose { inbound, outbound in
            var lines = inbound.makeAsyncIterator()
            func reply(_ expected: Int) async throws -> [String] {
                var text: [String] = []
                while let line = try await lines.next() {
                    let s = String(buffer: line)
                    text.append(s)
                    guard s.count >= 4, let code = Int(s.prefix(3)) else {
                        throw NotifyError("SMTP: malformed reply \(s)", retryable: true)
                    }
                    if s[s.index(s.startIndex, offsetBy: 3)] == "-" { continue }
                    guard code == expected else {
                        throw NotifyError("SMTP answered \(s) (expected \(expected))", retryable: code >= 400 && code < 500)
                    }
                    return text
                }
                throw NotifyError("SMTP connection closed", retryable: true)
            }
            func command(_ line: String, _ expected: Int) async throws -> [String] {
                try await outbound.write(ByteBuffer(string: line + "\r\n"))
                return try await reply(expected)
            }
            _ = try await reply(220)
            var capabilities = try await command("EHLO fleetwatch-hub", 250)
            if security == .starttls {
                guard capabilities.contains(where: { $0.uppercased().contains("STARTTLS") }) else {
                    throw NotifyError("SMTP server does not offer STARTTLS", retryable: false)
                }
                _ = try await command("STARTTLS", 220)
                try await channel.channel.pipeline.addHandler(try tlsHandler(), position: .first)
                capabilities = try await command("EHLO fleetwatch-hub", 250)
            }
            if let username, let password {
                let token = Data("\u{0}\(username)\u{0}\(password)".utf8).base64EncodedString()
                _ = try await command("AUTH PLAIN \(token)", 235)
            }
            guard MailFormat.isPlainAddress(from), to.allSatisfy(MailFormat.isPlainAddress) else {
                throw NotifyError("email addresses must be plain local@domain (no spaces, brackets or control characters)", retryable: false)
            }
            _ = try await command("MAIL FROM:<\(from)>", 250)
            for r in to { _ = try await command("RCPT TO:<\(r)>", 250) }
            _ = try await command("DATA", 354)
            _ = try await command(MailFormat.dotStuffed(message) + "\r\n.", 250)
            _ = try? await command("QUIT", 221)
        }
    }
}

/// Splits the SMTP reply stream into lines (CRLF or LF).
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let i = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > 8192 { throw NotifyError("SMTP reply line too long", retryable: false) }
            return .needMoreData
        }
        let length = i - buffer.readerIndex
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == UInt8(ascii: "\r") { line = line.getSlice(at: line.readerIndex, length: line.readableBytes - 1)! }
        context.fireChannelRead(Self.wrapInboundOut(line))
        return .continue
    }
}
