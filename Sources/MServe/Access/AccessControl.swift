import MServeHTTP
import MServeSystem

/// Who may call what, for one worker: the keys from the keys file and each model's permission.
/// Off (every request allowed) when no keys file is configured; with one, every route but the
/// open ones (health, readiness, and metrics unless keyed) needs a valid key.
public final class AccessControl: Sendable {
    public let keys: [APIKey]
    let permissions: [String: ModelPermission]
    /// Keys by the first 8 bytes of their hash: the one candidate is then compared in full, in
    /// constant time.  Finding it by a prefix of the hash tells a timing attacker nothing about a
    /// key (he would need SHA-256 preimages), and costs the same with 1 key or 10,000.
    private let byPrefix: [UInt64: [Int]]

    public init(keys: [APIKey], permissions: [String: ModelPermission]) {
        self.keys = keys
        self.permissions = permissions
        var index: [UInt64: [Int]] = [:]
        for (i, k) in keys.enumerated() { index[AccessControl.prefix(k.hash), default: []].append(i) }
        byPrefix = index
    }

    private static func prefix(_ hash: [UInt8]) -> UInt64 { hash.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }

    public enum Outcome: Equatable, Sendable {
        case key(APIKey)
        case missing
        /// A key no entry has; only its last four characters are kept.
        case invalid(redacted: String)
        case badSignature(RequestSignature.Failure)
        /// The shared nonce log has no room near this nonce: a capacity limit, not the client's fault.
        case nonceLogFull
    }

    /// A request's key: from its signature (mserve's headers, or go-infer's body fields) if it is
    /// signed, else as `authenticate(authorization:apiKey:)`.  A signed request's nonce is recorded
    /// in `nonces`, shared by the workers, and refused the second time within the window.
    public func authenticate(_ request: HTTPRequest, body json: JSON?, now: Double, window: Double, nonces: NonceLog?) -> Outcome {
        // The three credential headers in one pass over the head (this runs on every request).
        var authorization: String?, apiKey: String?, signature: String?
        for (name, value) in request.head.headers {
            switch name.utf8.first.map({ $0 | 0x20 }) {
            case UInt8(ascii: "a"): if authorization == nil && name.equalsIgnoringASCIICase("Authorization") { authorization = value }
            case UInt8(ascii: "x"):
                if apiKey == nil && name.equalsIgnoringASCIICase("X-API-Key") {
                    apiKey = value
                } else if signature == nil && name.equalsIgnoringASCIICase("X-Signature") {
                    signature = value
                }
            default: break
            }
        }
        let verified: Result<(APIKey, RequestSignature.Claim), RequestSignature.Failure>
        if let signature {
            guard let name = request.header("X-MServe-Key"), let timestamp = request.header("X-MServe-Timestamp"),
                let nonce = request.header("X-MServe-Nonce")
            else {
                return .badSignature(.malformed("X-Signature needs X-MServe-Key, X-MServe-Timestamp and X-MServe-Nonce"))
            }
            verified = RequestSignature.verify(
                keyName: name, timestamp: timestamp, nonce: nonce, signature: signature,
                method: request.head.methodName, target: request.target, body: request.body,
                now: now, window: window, keys: keys)
        } else if let json, json["signData"] != nil, json["appId"] != nil {
            verified = RequestSignature.verifyGoInfer(json, now: now, window: window, keys: keys)
        } else {
            return authenticate(authorization: authorization, apiKey: apiKey)
        }
        switch verified {
        case .failure(let f):
            return .badSignature(f)
        case .success(let (key, claim)):
            switch nonces?.remember(
                key: key.name, nonce: claim.nonce, expiry: claim.timestamp + Int64(window.rounded(.up)) + 1,
                now: Int64(now)) ?? .fresh
            {
            case .fresh: return .key(key)
            case .seen: return .badSignature(.replayed)
            case .full: return .nonceLogFull
            }
        }
    }

    /// The key a request presents (`Authorization: Bearer KEY`, else `X-API-Key: KEY`), checked
    /// against every entry's hash in constant time.
    public func authenticate(authorization: String?, apiKey: String?) -> Outcome {
        guard let hash = AccessControl.presentedKey(authorization: authorization, apiKey: apiKey, Crypto.sha256) else { return .missing }
        for i in byPrefix[AccessControl.prefix(hash)] ?? [] where Crypto.constantTimeEqual(keys[i].hash, hash) { return .key(keys[i]) }
        // Only now, for the message: the key's last characters.
        let redacted = AccessControl.presentedKey(authorization: authorization, apiKey: apiKey) {
            APIKey.redacted(String(decoding: $0, as: UTF8.self))
        }
        return .invalid(redacted: redacted ?? "")
    }

    /// The presented key's bytes (`Bearer KEY`, else the X-API-Key value, spaces trimmed) handed to
    /// `use` where they lie in the header, without a copy; nil if neither holds one.
    static func presentedKey<T>(authorization: String?, apiKey: String?, _ use: (UnsafeBufferPointer<UInt8>) -> T) -> T? {
        func within(_ text: String, dropping prefix: Int) -> T? {
            var text = text
            return text.withUTF8 { all -> T? in
                var start = prefix, end = all.count
                while start < end && (all[start] == 0x20 || all[start] == 0x09) { start += 1 }
                while end > start && (all[end - 1] == 0x20 || all[end - 1] == 0x09) { end -= 1 }
                return start == end ? nil : use(UnsafeBufferPointer(rebasing: all[start..<end]))
            }
        }
        if let authorization, isBearer(authorization), let found = within(authorization, dropping: 7) { return found }
        if let apiKey { return within(apiKey, dropping: 0) }
        return nil
    }

    private static func isBearer(_ value: String) -> Bool {
        var v = value
        return v.withUTF8 { b in
            b.count > 7 && b[0] | 0x20 == 0x62 && b[1] | 0x20 == 0x65 && b[2] | 0x20 == 0x61 && b[3] | 0x20 == 0x72
                && b[4] | 0x20 == 0x65 && b[5] | 0x20 == 0x72 && b[6] == 0x20
        }
    }

    /// Whether the key may use the model: it lists the model (or lists none), and the model's
    /// permission (if it has one) allows it.
    public func allows(_ key: APIKey, model: String) -> Bool {
        if let models = key.models, !models.contains(model) { return false }
        return permissions[model]?.allows(key) ?? true
    }

    /// The error for a request without a usable key: 401 with the challenge OpenAI's clients expect.
    func refusal(_ outcome: Outcome) -> HTTPError {
        if outcome == .nonceLogFull {
            return HTTPError(
                503, "too many signed requests within the signature window; retry in a second",
                headers: [("Retry-After", "1")], code: "overloaded")
        }
        let message: String
        switch outcome {
        case .missing: message = "You didn't provide an API key: send Authorization: Bearer KEY or X-API-Key: KEY"
        case .invalid(let redacted): message = "Incorrect API key provided: \(redacted)"
        case .badSignature(let failure): message = failure.description
        case .key, .nonceLogFull: message = "unexpected"
        }
        return HTTPError(401, message, headers: [("WWW-Authenticate", #"Bearer realm="mserve""#)], code: "invalid_api_key")
    }

    static func forbidden(_ key: APIKey, model: String) -> HTTPError {
        HTTPError(403, "key \(key.name) may not use model \(model)", code: "permission_denied")
    }
}
