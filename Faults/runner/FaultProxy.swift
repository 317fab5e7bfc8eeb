import Foundation

/// A TCP proxy on loopback between agents and a hub that injects network faults: refuse connections
/// (listener closed), silently drop everything (half-open connections), or let a WebSocket frame through
/// and drop the reply to it — an ack after the hub committed the batch, or a bot's command result — and
/// cut the connection, as a network failure at the worst moment would.
final class FaultProxy: @unchecked Sendable {
    enum Mode: Equatable {
        case pass
        /// Nothing is forwarded either way; connections stay open (a silently dropped network).
        case blackhole
    }

    let port: Int
    let target: Int
    private let lock = NSLock()
    private var mode = Mode.pass
    private var listener: Int32 = -1
    private var sockets: Set<Int32> = []
    /// Acks (hub → agent) still to drop, and command results (agent → hub) still to drop.
    private var acksToDrop = 0
    private var resultsToDrop = 0
    private(set) var droppedAcks = 0
    private(set) var droppedResults = 0

    init(port: Int, target: Int) {
        self.port = port
        self.target = target
    }

    func set(_ mode: Mode) { lock.withLock { self.mode = mode } }
    func dropAcks(_ n: Int) { lock.withLock { acksToDrop += n } }
    func dropCommandResults(_ n: Int) { lock.withLock { resultsToDrop += n } }
    var stats: (acks: Int, results: Int) { lock.withLock { (droppedAcks, droppedResults) } }

    /// Starts accepting on `port`.
    func open() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 1024) == 0 else {
            close(fd)
            throw FaultError("fault proxy cannot listen on \(port): errno \(errno)")
        }
        lock.withLock { listener = fd }
        Thread.detachNewThread { [self] in acceptLoop(fd) }
    }

    /// Closes the listener and every connection: new connections are refused until `open` again.
    func refuse() {
        let (fd, open) = lock.withLock { () -> (Int32, Set<Int32>) in
            defer { listener = -1; sockets = [] }
            return (listener, sockets)
        }
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
        for s in open { shutdown(s, Int32(SHUT_RDWR)) }
    }

    /// Cuts every open connection (the listener stays).
    func cutAll() {
        let open = lock.withLock { sockets }
        for s in open { shutdown(s, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop(_ fd: Int32) {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = Self.loopback(target)
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard ok == 0 else { close(client); close(upstream); continue }
            lock.withLock { sockets.insert(client); sockets.insert(upstream) }
            Thread.detachNewThread { [self] in pump(from: upstream, to: client, masked: false) }
            Thread.detachNewThread { [self] in pump(from: client, to: upstream, masked: true) }
        }
    }

    /// Copies bytes one way, frame by frame once the HTTP upgrade is done, so a frame can be dropped.
    private func pump(from src: Int32, to dst: Int32, masked: Bool) {
        var parser = WebSocketFrameSplitter(masked: masked)
        var buffer = [UInt8](repeating: 0, count: 65536)
        defer {
            shutdown(src, Int32(SHUT_RDWR)); shutdown(dst, Int32(SHUT_RDWR))
            lock.withLock { sockets.remove(src); sockets.remove(dst) }
            close(src)
        }
        while true {
            let n = read(src, &buffer, buffer.count)
            guard n > 0 else { return }
            if lock.withLock({ mode }) == .blackhole { continue }
            for chunk in parser.feed(buffer[0..<n]) {
                if case .frame(let type, let bytes) = chunk {
                    let drop = lock.withLock { () -> Bool in
                        if !masked, type == 0x04, acksToDrop > 0 { acksToDrop -= 1; droppedAcks += 1; return true }
                        if masked, type == 0x07, resultsToDrop > 0 { resultsToDrop -= 1; droppedResults += 1; return true }
                        return false
                    }
                    if drop { return }   // the reply is lost and the connection with it
                    guard writeAll(dst, bytes) else { return }
                } else if case .raw(let bytes) = chunk {
                    guard writeAll(dst, bytes) else { return }
                }
            }
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    static func loopback(_ port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }
}

/// Splits a WebSocket byte stream into the HTTP upgrade (passed raw) and whole frames, reporting each
/// binary frame's first payload byte (the fleetwatch frame type).
struct WebSocketFrameSplitter {
    enum Chunk { case raw([UInt8]), frame(type: UInt8?, bytes: [UInt8]) }
    let masked: Bool
    private var upgraded = false
    private var pending: [UInt8] = []

    init(masked: Bool) { self.masked = masked }

    mutating func feed(_ bytes: ArraySlice<UInt8>) -> [Chunk] {
        pending.append(contentsOf: bytes)
        var out: [Chunk] = []
        if !upgraded {
            guard let end = Self.headerEnd(pending) else { return out }
            out.append(.raw(Array(pending[..<end])))
            pending.removeFirst(end)
            upgraded = true
        }
        while let (length, type) = frameLength() {
            out.append(.frame(type: type, bytes: Array(pending[..<length])))
            pending.removeFirst(length)
        }
        return out
    }

    /// The whole frame's length and its binary payload's first byte, if a whole frame is pending.
    private func frameLength() -> (Int, UInt8?)? {
        guard pending.count >= 2 else { return nil }
        let opcode = pending[0] & 0x0F
        let hasMask = pending[1] & 0x80 != 0
        var length = Int(pending[1] & 0x7F), header = 2
        if length == 126 {
            guard pending.count >= 4 else { return nil }
            length = Int(pending[2]) << 8 | Int(pending[3]); header = 4
        } else if length == 127 {
            guard pending.count >= 10 else { return nil }
            length = (2..<10).reduce(0) { $0 << 8 | Int(pending[$1]) }; header = 10
        }
        let maskBytes = hasMask ? 4 : 0
        let total = header + maskBytes + length
        guard pending.count >= total else { return nil }
        var type: UInt8?
        if opcode == 0x2, length > 0 {
            let first = pending[header + maskBytes]
            type = hasMask ? first ^ pending[header] : first
        }
        return (total, type)
    }

    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }
}

struct FaultError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
