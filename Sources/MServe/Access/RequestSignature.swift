import MServeSystem

/// Signed requests, for callers that must prove integrity and freshness (pure).
///
/// mserve's form: HMAC-SHA256 with the key's signing secret (the SHA-256 of the key, which the
/// server holds and the client computes) over
/// `METHOD \n TARGET \n TIMESTAMP \n NONCE \n hex(SHA-256(body))`, sent as `X-MServe-Key: NAME`,
/// `X-MServe-Timestamp: UNIX-SECONDS`, `X-MServe-Nonce: 16-128 characters`, `X-Signature: HEX`.
///
/// go-infer's form, so that its clients move over unchanged: body fields `appId` (the key's
/// name), `timestamp`, `signType: "SHA256"`, `signData`: base64 of the hex SHA-256 of every other
/// field sorted, `k=v` joined by `&`, then `&key=SECRET`.  That is a hash with the secret at the
/// end, not an HMAC (it relies on SHA-256 not being extendable as used; HMAC is built for this)
/// and it covers neither the method nor the path, nor has a nonce: mserve adds one by refusing the
/// same signData twice within the window.
public enum RequestSignature {
    public static let defaultWindow = 300.0

    /// What a signed request names, before the signature is checked.
    public struct Claim: Equatable, Sendable {
        public var keyName: String
        public var timestamp: Int64
        /// What makes it unique within the window (the nonce, or go-infer's signData).
        public var nonce: String
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case malformed(String), unknownKey(String), stale(Int64, window: Double), mismatch, replayed

        public var description: String {
            switch self {
            case .malformed(let m): return "signed request: \(m)"
            case .unknownKey(let n): return "signed request: no key named \(n)"
            case .stale(let t, let w): return "signed request: timestamp \(t) is outside the \(Int(w))-second window"
            case .mismatch: return "signed request: the signature does not match"
            case .replayed: return "signed request: this nonce was already used within the window"
            }
        }
    }

    public static func signingSecret(ofKey key: String) -> [UInt8] { Crypto.sha256(Array(key.utf8)) }

    public static func canonical(method: String, target: String, timestamp: Int64, nonce: String, body: [UInt8]) -> [UInt8] {
        Array("\(method)\n\(target)\n\(timestamp)\n\(nonce)\n\(Crypto.hex(Crypto.sha256(body)))".utf8)
    }

    /// The header a client sends: hex HMAC-SHA256 of the canonical text.
    public static func sign(secret: [UInt8], method: String, target: String, timestamp: Int64, nonce: String, body: [UInt8]) -> String {
        Crypto.hex(Crypto.hmacSHA256(key: secret, message: canonical(method: method, target: target, timestamp: timestamp, nonce: nonce, body: body)))
    }

    /// Checks mserve's form: the key (looked up by name), the window, the HMAC.  The nonce is the
    /// caller's to check for replays.
    public static func verify(
        keyName: String, timestamp: String, nonce: String, signature: String, method: String, target: String,
        body: [UInt8], now: Double, window: Double, keys: [APIKey]
    ) -> Result<(APIKey, Claim), Failure> {
        guard let t = Int64(timestamp) else { return .failure(.malformed("X-MServe-Timestamp must be Unix seconds")) }
        guard (16...128).contains(nonce.utf8.count), nonce.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(.malformed("X-MServe-Nonce must be 16 to 128 printable characters"))
        }
        guard let key = keys.first(where: { $0.name == keyName }) else { return .failure(.unknownKey(keyName)) }
        guard abs(Double(t) - now) <= window else { return .failure(.stale(t, window: window)) }
        let expected = sign(secret: key.hash, method: method, target: target, timestamp: t, nonce: nonce, body: body)
        guard Crypto.constantTimeEqual(Array(expected.utf8), Array(signature.lowercased().utf8)) else { return .failure(.mismatch) }
        return .success((key, Claim(keyName: keyName, timestamp: t, nonce: nonce)))
    }

    // MARK: go-infer

    /// go-infer's string to sign: every top-level field but signData, sorted, `k=v` joined by
    /// `&`, objects as Go's json.Marshal writes them, then `&key=SECRET`.
    public static func goInferString(_ body: JSON, secret: String) -> String? {
        guard case .object(let pairs) = body else { return nil }
        let fields = pairs.filter { $0.0 != "signData" }.sorted { $0.0 < $1.0 }.map { k, v in "\(k)=\(goText(v))" }
        return fields.joined(separator: "&") + "&key=" + secret
    }

    public static func goInferSignature(_ body: JSON, secret: String) -> String? {
        goInferString(body, secret: secret).map { Array(Crypto.hex(Crypto.sha256(Array($0.utf8))).utf8).withUnsafeBytes(Base64.encode) }
    }

    static func goText(_ v: JSON) -> String {
        switch v {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "<nil>"
        default: return goJSON(v)
        }
    }

    /// Go's json.Marshal of a decoded value: object keys sorted, and <, >, & escaped.
    static func goJSON(_ v: JSON) -> String {
        func sorted(_ v: JSON) -> JSON {
            switch v {
            case .object(let pairs): return .object(pairs.sorted { $0.0 < $1.0 }.map { ($0.0, sorted($0.1)) })
            case .array(let items): return .array(items.map(sorted))
            default: return v
            }
        }
        var out: [UInt8] = []
        for b in sorted(v).serialized() {
            switch b {
            case UInt8(ascii: "<"): out += Array("\\u003c".utf8)
            case UInt8(ascii: ">"): out += Array("\\u003e".utf8)
            case UInt8(ascii: "&"): out += Array("\\u0026".utf8)
            default: out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Checks go-infer's form in a JSON body: appId names the key, its secret is the hex SHA-256 of
    /// the key (what `mserve keys add` prints as the signing secret).
    public static func verifyGoInfer(_ body: JSON, now: Double, window: Double, keys: [APIKey]) -> Result<(APIKey, Claim), Failure> {
        guard case .string(let appID)? = body["appId"] else { return .failure(.malformed("appId is missing")) }
        guard case .string(let signData)? = body["signData"] else { return .failure(.malformed("signData is missing")) }
        guard body["signType"] == .string("SHA256") else { return .failure(.malformed("signType must be SHA256")) }
        if let v = body["version"], v != .string("1"), v != .int(1) { return .failure(.malformed("version must be 1")) }
        let t: Int64
        switch body["timestamp"] {
        case .some(.int(let i)): t = i
        case .some(.string(let s)) where Int64(s) != nil: t = Int64(s) ?? 0
        default: return .failure(.malformed("timestamp must be Unix seconds"))
        }
        guard let key = keys.first(where: { $0.name == appID }) else { return .failure(.unknownKey(appID)) }
        guard abs(Double(t) - now) <= window else { return .failure(.stale(t, window: window)) }
        guard let expected = goInferSignature(body, secret: Crypto.hex(key.hash)),
            Crypto.constantTimeEqual(Array(expected.utf8), Array(signData.utf8))
        else { return .failure(.mismatch) }
        return .success((key, Claim(keyName: appID, timestamp: t, nonce: signData)))
    }
}
