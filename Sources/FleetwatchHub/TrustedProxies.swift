import Foundation

/// The reverse proxies and load balancers allowed to say who the client is (`hub.trusted_proxies`, CIDRs).
/// Only a request whose peer is one of them has its `X-Forwarded-For` and `X-Forwarded-Proto` honoured; from
/// anyone else those headers are ignored, so a client cannot pick the address the audit log and the sign-in
/// limiter see.
public struct TrustedProxies: Sendable, Equatable {
    /// An IPv4 or IPv6 network.
    public struct Network: Sendable, Equatable, CustomStringConvertible {
        let bytes: [UInt8]
        let prefix: Int

        /// `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`, `::1`).
        public init?(_ text: String) {
            let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let bytes = TrustedProxies.parse(String(parts[0])) else { return nil }
            let maxPrefix = bytes.count * 8
            if parts.count == 2 {
                guard let p = Int(parts[1]), (0...maxPrefix).contains(p) else { return nil }
                prefix = p
            } else {
                prefix = maxPrefix
            }
            self.bytes = bytes
        }

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var remaining = prefix
            for i in 0..<bytes.count where remaining > 0 {
                let bits = min(remaining, 8)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if address[i] & mask != bytes[i] & mask { return false }
                remaining -= bits
            }
            return true
        }

        public var description: String {
            let address = bytes.count == 4 ? bytes.map(String.init).joined(separator: ".")
                : stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
            return "\(address)/\(prefix)"
        }
    }

    public var networks: [Network]

    public init(_ networks: [Network] = []) { self.networks = networks }

    /// Parses CIDRs; throws naming the first that is not one.
    public init(parsing list: [String], source: String) throws {
        networks = try list.map { text in
            guard let n = Network(text) else {
                throw ConfigurationError("\(source): '\(text.prefix(60))' is not an address or network (e.g. 10.0.0.0/8, 192.0.2.7, fd00::/8)")
            }
            return n
        }
    }

    public var isEmpty: Bool { networks.isEmpty }

    /// Whether `ip` (text) is a trusted proxy.
    public func contains(_ ip: String) -> Bool {
        guard !networks.isEmpty, let bytes = Self.parse(ip) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// Who sent a request: the client's address and whether its original request was HTTPS.
    public struct Origin: Sendable, Equatable {
        /// The client's IP address.
        public var client: String
        /// For the audit log: the client, and the proxy it came through when it did.
        public var remote: String
        public var https: Bool
    }

    /// The origin of a request that reached the hub from `peerIP`:`peerPort`. From a trusted proxy, the client is
    /// the rightmost `X-Forwarded-For` address that is not itself a trusted proxy (proxies append, so entries to
    /// its left were written by the client and cannot be trusted), and `X-Forwarded-Proto`'s first value says
    /// whether the client used HTTPS.
    public func origin(peerIP: String, peerPort: Int, forwardedFor: String?, forwardedProto: String?, directTLS: Bool) -> Origin {
        let peer = Self.canonical(peerIP)
        let direct = Origin(client: peer, remote: Self.join(peer, peerPort), https: directTLS)
        guard contains(peer) else { return direct }
        var client = peer
        if let forwardedFor {
            for entry in forwardedFor.split(separator: ",").reversed() {
                guard let ip = Self.hostOnly(entry.trimmingCharacters(in: .whitespaces)), Self.parse(ip) != nil else { break }
                client = Self.canonical(ip)
                if !contains(client) { break }
            }
        }
        let proto = forwardedProto?.split(separator: ",").first?.trimmingCharacters(in: .whitespaces).lowercased()
        let https = proto.map { $0 == "https" } ?? directTLS
        return Origin(client: client, remote: client == peer ? direct.remote : "\(client) via \(Self.join(peer, peerPort))", https: https)
    }

    static func join(_ ip: String, _ port: Int) -> String { "\(ip):\(port)" }

    /// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80` or `::1` → the address alone.
    static func hostOnly(_ entry: String) -> String? {
        if entry.hasPrefix("[") {
            guard let close = entry.firstIndex(of: "]") else { return nil }
            return String(entry[entry.index(after: entry.startIndex)..<close])
        }
        if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") { return String(entry[..<colon]) }
        return entry.isEmpty ? nil : entry
    }

    /// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) as IPv4.
    static func canonical(_ ip: String) -> String {
        if ip.lowercased().hasPrefix("::ffff:"), ip.contains(".") { return String(ip.dropFirst(7)) }
        return ip
    }

    /// The address's bytes (4 or 16), or nil.
    static func parse(_ text: String) -> [UInt8]? {
        let ip = canonical(text)
        var v4 = in_addr()
        if inet_pton(AF_INET, ip, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, ip, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
