/// The client behind trusted proxies (gunicorn's `forwarded_allow_ips`): a balancer in front sends
/// `X-Forwarded-For: client, proxy1, ...`, and only a peer that is one of the trusted proxies may
/// say who the client was (pure).
public enum ForwardedFor {
    /// The client's address: `peer` itself unless it is trusted and sent the header; then the
    /// header's hops from the right, skipping trusted proxies, up to the first that is not one.
    public static func client(peer: String, header: String?, trusted: [String]) -> String {
        guard let header, isTrusted(peer, trusted) else { return peer }
        var client = peer
        for hop in header.split(separator: ",").reversed() {
            let address = String(hop.trimmingSpaces())
            guard isAddress(address) else { break }
            client = address
            if !isTrusted(address, trusted) { break }
        }
        return client
    }

    static func isTrusted(_ address: String, _ trusted: [String]) -> Bool {
        trusted.contains("*") || trusted.contains(address)
    }

    /// An IPv4 or IPv6 address literal (not a name, not a port): nothing else is believed.
    public static func isAddress(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard !bytes.isEmpty, bytes.count <= 45 else { return false }
        if bytes.contains(UInt8(ascii: ":")) {
            return bytes.filter { $0 == 0x3A }.count >= 2
                && bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) || $0 == 0x3A || $0 == 0x2E }
        }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in p.count <= 3 && !p.isEmpty && p.allSatisfy(\.isASCIIDigit) && (Int(p) ?? 256) <= 255 }
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
