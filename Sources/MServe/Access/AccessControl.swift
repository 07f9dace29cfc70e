import MServeHTTP
import MServePOSIX

/// Who may call what, for one worker: the keys from the keys file and each model's permission.
/// Off (every request allowed) when no keys file is configured; with one, every route but the
/// open ones (health, readiness, and metrics unless keyed) needs a valid key.
public final class AccessControl: Sendable {
    public let keys: [APIKey]
    let permissions: [String: ModelPermission]

    public init(keys: [APIKey], permissions: [String: ModelPermission]) {
        self.keys = keys
        self.permissions = permissions
    }

    public enum Outcome: Equatable, Sendable {
        case key(APIKey)
        case missing
        /// A key no entry has; only its last four characters are kept.
        case invalid(redacted: String)
    }

    /// The key a request presents (`Authorization: Bearer KEY`, else `X-API-Key: KEY`), checked
    /// against every entry's hash in constant time.
    public func authenticate(authorization: String?, apiKey: String?) -> Outcome {
        guard let presented = AccessControl.presentedKey(authorization: authorization, apiKey: apiKey) else { return .missing }
        let hash = Crypto.sha256(Array(presented.utf8))
        var found: APIKey?
        for key in keys where Crypto.constantTimeEqual(key.hash, hash) && found == nil { found = key }
        return found.map(Outcome.key) ?? .invalid(redacted: APIKey.redacted(presented))
    }

    static func presentedKey(authorization: String?, apiKey: String?) -> String? {
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, String(parts[0]).equalsIgnoringASCIICase("Bearer") {
                let key = parts[1].trimmingSpaces()
                if !key.isEmpty { return String(key) }
            }
        }
        if let apiKey, !apiKey.trimmingSpaces().isEmpty { return String(apiKey.trimmingSpaces()) }
        return nil
    }

    /// Whether the key may use the model: it lists the model (or lists none), and the model's
    /// permission (if it has one) allows it.
    public func allows(_ key: APIKey, model: String) -> Bool {
        if let models = key.models, !models.contains(model) { return false }
        return permissions[model]?.allows(key) ?? true
    }

    /// The error for a request without a usable key: 401 with the challenge OpenAI's clients expect.
    func refusal(_ outcome: Outcome) -> HTTPError {
        let message: String
        switch outcome {
        case .missing: message = "You didn't provide an API key: send Authorization: Bearer KEY or X-API-Key: KEY"
        case .invalid(let redacted): message = "Incorrect API key provided: \(redacted)"
        case .key: message = "unexpected"
        }
        return HTTPError(401, message, headers: [("WWW-Authenticate", #"Bearer realm="mserve""#)], code: "invalid_api_key")
    }

    static func forbidden(_ key: APIKey, model: String) -> HTTPError {
        HTTPError(403, "key \(key.name) may not use model \(model)", code: "permission_denied")
    }
}
