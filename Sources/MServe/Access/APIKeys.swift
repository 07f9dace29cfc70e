import MServeSystem

/// One API key as the keys file holds it: a name, the key's SHA-256 (never the key), its groups,
/// the models it may use (nil: every model its groups allow), and its limits.
public struct APIKey: Sendable, Equatable {
    public var name: String
    public var hash: [UInt8]
    public var groups: [String] = []
    public var models: [String]?
    /// Requests per second and requests in flight, across all workers (nil: no limit).
    public var rateLimit: Double?
    public var maxInFlight: Int?
    /// Its counters in the shared KeyLimiter, given by the master (nil: not counted).
    public var slot: Int?

    public init(name: String, hash: [UInt8], groups: [String] = [], models: [String]? = nil, rateLimit: Double? = nil, maxInFlight: Int? = nil) {
        self.name = name
        self.hash = hash
        self.groups = groups
        self.models = models
        self.rateLimit = rateLimit
        self.maxInFlight = maxInFlight
    }

    /// A new key: "msk-" and 64 hex digits of OpenSSL's randomness (256 bits, so a plain SHA-256
    /// is as safe a stored form as a slow hash would be).
    public static func generate() throws(SystemError) -> String { "msk-" + Crypto.hex(try Crypto.randomBytes(32)) }

    /// The last four characters of what a client sent, the most any message shows of it.
    public static func redacted(_ presented: String) -> String {
        presented.count <= 8 ? "****" : "..." + String(presented.suffix(4))
    }
}

/// The keys file (`--keys-file`): one key per line, `#` comments, fields after the name and hash:
///
///     # name   hash                 fields (all optional)
///     alice    sha256:9f86d08...    groups=research,ops models=demo,minilm rps=10 in_flight=4
///
/// `mserve keys add` writes these lines; an error names the file, the line and the field.
public enum KeysFile {
    public static func parse(_ text: String, path: String) throws(ConfigError) -> [APIKey] {
        var keys: [APIKey] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let content = raw.prefix { $0 != "#" }
            let words = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if words.isEmpty { continue }
            func fail(_ message: String) -> ConfigError { ConfigError("\(path):\(number): \(message)") }
            guard words.count >= 2 else { throw fail("expected NAME sha256:HEX [groups=..] [models=..] [rps=N] [in_flight=N]") }
            let name = words[0]
            guard
                name.utf8.allSatisfy({
                    ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E
                })
            else {
                throw fail("key name '\(name)': only letters, digits, '-', '_' and '.'")
            }
            guard !keys.contains(where: { $0.name == name }) else { throw fail("key name '\(name)' is already used") }
            guard words[1].hasPrefix("sha256:"), let hash = Crypto.bytes(hex: String(words[1].dropFirst(7))), hash.count == 32 else {
                throw fail("field hash: expected sha256: and 64 hex digits (mserve keys add writes it)")
            }
            var key = APIKey(name: name, hash: hash)
            for field in words.dropFirst(2) {
                guard let eq = field.firstIndex(of: "=") else { throw fail("field '\(field)': expected NAME=VALUE") }
                let fname = String(field[..<eq])
                let value = String(field[field.index(after: eq)...])
                let list = value.split(separator: ",").map(String.init)
                switch fname {
                case "groups":
                    guard !list.isEmpty else { throw fail("field groups: expected a comma-separated list") }
                    key.groups = list
                case "models":
                    guard !list.isEmpty else { throw fail("field models: expected a comma-separated list") }
                    key.models = list
                case "rps":
                    guard let v = Double(value), v > 0, v.isFinite else { throw fail("field rps: expected a positive number, got '\(value)'") }
                    key.rateLimit = v
                case "in_flight":
                    guard let v = Int(value), v > 0 else { throw fail("field in_flight: expected a positive whole number, got '\(value)'") }
                    key.maxInFlight = v
                default:
                    throw fail("unknown field '\(fname)' (groups, models, rps, in_flight)")
                }
            }
            keys.append(key)
        }
        return keys
    }

    public static func line(_ key: APIKey) -> String {
        var fields = ["\(key.name) sha256:\(Crypto.hex(key.hash))"]
        if !key.groups.isEmpty { fields.append("groups=" + key.groups.joined(separator: ",")) }
        if let m = key.models { fields.append("models=" + m.joined(separator: ",")) }
        if key.rateLimit != nil { fields.append("rps=\(RateLimit.text(key.rateLimit))") }
        if let n = key.maxInFlight { fields.append("in_flight=\(n)") }
        return fields.joined(separator: " ")
    }

    /// Reads and parses the file (a missing or unreadable file is a ConfigError too).
    public static func load(_ path: String) throws(ConfigError) -> [APIKey] {
        let text: String
        do { text = try FileReading.text(path) } catch { throw ConfigError("keys file: \(error)") }
        return try parse(text, path: path)
    }
}
