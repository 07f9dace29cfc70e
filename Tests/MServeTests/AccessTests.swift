import MServeSystem
import MServeTesting
import Testing

@testable import MServe

/// API keys, permissions and the 401/403 answers, in-process.
struct AccessTests {
    static let aliceKey = "msk-alice-0000000000000000000000000000"
    static let bobKey = "msk-bob-11111111111111111111111111111111"

    @Test func cryptoIsOpenSSLs() {
        // FIPS 180-2 and RFC 4231 test vectors.
        #expect(Crypto.hex(Crypto.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let mac = Crypto.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(Crypto.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(Crypto.constantTimeEqual([1, 2, 3], [1, 2, 3]) && !Crypto.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!Crypto.constantTimeEqual([1, 2], [1, 2, 3]))
        #expect(Crypto.bytes(hex: "00ff10Ab") == [0, 255, 16, 171] && Crypto.bytes(hex: "0g") == nil && Crypto.bytes(hex: "abc") == nil)
    }

    @Test func generatedKeysAreLongAndDifferent() throws {
        let a = try APIKey.generate()
        let b = try APIKey.generate()
        #expect(a.hasPrefix("msk-") && a.count == 68 && a != b)
        #expect(APIKey.redacted(a) == "..." + a.suffix(4) && APIKey.redacted("short") == "****")
    }

    static func line(_ name: String, _ key: String, _ fields: String = "") -> String {
        "\(name) sha256:\(Crypto.hex(Crypto.sha256(Array(key.utf8)))) \(fields)"
    }

    @Test func theKeysFileRoundTripsAndSaysWhereItIsWrong() throws {
        let text =
            "# keys\n\n" + Self.line("alice", Self.aliceKey, "groups=research,ops rps=2.5 in_flight=3  # comment") + "\n"
            + Self.line("bob", Self.bobKey, "models=demo")
        let keys = try KeysFile.parse(text, path: "k")
        #expect(keys.map(\.name) == ["alice", "bob"])
        #expect(keys[0].groups == ["research", "ops"] && keys[0].rateLimit == 2.5 && keys[0].maxInFlight == 3 && keys[0].models == nil)
        #expect(keys[1].models == ["demo"])
        #expect(try KeysFile.parse(keys.map(KeysFile.line).joined(separator: "\n"), path: "k") == keys)
        let hash = "sha256:" + String(repeating: "ab", count: 32)
        let bad: [(String, String)] = [
            ("alice", "k:1: expected NAME sha256:HEX [groups=..] [models=..] [rps=N] [in_flight=N]"),
            ("alice md5:00", "k:1: field hash: expected sha256: and 64 hex digits (mserve keys add writes it)"),
            ("\nal/ce \(hash)", "k:2: key name 'al/ce': only letters, digits, '-', '_' and '.'"),
            ("a \(hash)\na \(hash)", "k:2: key name 'a' is already used"),
            ("a \(hash) rps=0", "k:1: field rps: expected a positive number, got '0'"),
            ("a \(hash) in_flight=x", "k:1: field in_flight: expected a positive whole number, got 'x'"),
            ("a \(hash) colour=red", "k:1: unknown field 'colour' (groups, models, rps, in_flight)"),
            ("a \(hash) groups", "k:1: field 'groups': expected NAME=VALUE")
        ]
        for (text, message) in bad {
            #expect(throws: ConfigError(message), "\(text)") { try KeysFile.parse(text, path: "k") }
        }
    }

    @Test func permissionsInHepAIsShape() throws {
        let p = try ModelPermission(parsing: "groups: research; users: alice, bob; owner: carol")
        #expect(p == ModelPermission(groups: ["research"], users: ["alice", "bob"], owner: "carol"))
        func key(_ name: String, _ groups: [String] = []) -> APIKey { APIKey(name: name, hash: [], groups: groups) }
        #expect(p.allows(key("alice")) && p.allows(key("carol")) && p.allows(key("dan", ["ops", "research"])))
        #expect(!p.allows(key("dan", ["ops"])))
        #expect(try ModelPermission(parsing: "groups: all").allows(key("anyone")))
        #expect(throws: ConfigError("permission 'team: x': unknown field 'team' (groups, users, owner)")) { try ModelPermission(parsing: "team: x") }
        #expect(throws: ConfigError("permission 'owner: a, b': owner takes one name")) { try ModelPermission(parsing: "owner: a, b") }
    }

    @Test func theKeyComesFromBearerOrXAPIKey() {
        let keys = [APIKey(name: "alice", hash: Crypto.sha256(Array(Self.aliceKey.utf8)))]
        let access = AccessControl(keys: keys, permissions: [:])
        #expect(access.authenticate(authorization: "Bearer \(Self.aliceKey)", apiKey: nil) == .key(keys[0]))
        #expect(access.authenticate(authorization: "bearer  \(Self.aliceKey) ", apiKey: nil) == .key(keys[0]))
        #expect(access.authenticate(authorization: nil, apiKey: Self.aliceKey) == .key(keys[0]))
        #expect(access.authenticate(authorization: "Basic dXNlcjpwYXNz", apiKey: nil) == .missing)
        #expect(access.authenticate(authorization: nil, apiKey: nil) == .missing)
        #expect(access.authenticate(authorization: "Bearer msk-wrong-key-9876", apiKey: nil) == .invalid(redacted: "...9876"))
    }

    static func server() throws -> TestServer {
        var settings = Settings()
        settings.keysFile = "test"
        settings.apiKeys = try KeysFile.parse(
            Self.line("alice", aliceKey, "groups=research") + "\n" + Self.line("bob", bobKey, "models=demo"), path: "k")
        settings.modelSettings["echo"] = ModelSettings()
        settings.modelSettings["echo"]?.permission = try ModelPermission(parsing: "groups: research")
        return try TestServer(serving: ["demo", "echo"], settings: settings)
    }

    @Test func everyRouteButTheProbesNeedsAKey() throws {
        let t = try Self.server()
        for path in ["/healthz", "/readyz", "/metrics"] { #expect(try t.request("GET", path).status != 401, "\(path)") }
        for (method, path) in [
            ("GET", "/"), ("GET", "/v1/models"), ("GET", "/v1/models/demo"), ("GET", "/demo"), ("POST", "/demo"),
            ("POST", "/echo"), ("GET", "/no/such/route"), ("DELETE", "/demo")
        ] {
            let r = try t.request(method, path, body: method == "POST" ? "{}" : nil)
            #expect(r.status == 401, "\(method) \(path)")
            #expect(r.headers["www-authenticate"] == #"Bearer realm="mserve""#)
            #expect(r.json?["recordid"] != nil)
        }
    }

    @Test func aKeyReachesOnlyItsModels() throws {
        let t = try Self.server()
        let alice = [("Authorization", "Bearer \(Self.aliceKey)")]
        let bob = [("X-API-Key", Self.bobKey)]
        #expect(try t.post("/demo", json: #"{"cal_number": 1}"#, headers: alice).status == 200)
        #expect(try t.post("/echo", json: #"{"a": 1}"#, headers: alice).status == 200)
        #expect(try t.post("/demo", json: #"{"cal_number": 1}"#, headers: bob).status == 200)
        let forbidden = try t.post("/echo", json: #"{"a": 1}"#, headers: bob)
        #expect(forbidden.status == 403 && forbidden.json?["error"]?["message"] == "key bob may not use model echo")
        #expect(try t.request("GET", "/echo", headers: bob).status == 403)
        guard case .array(let listed)? = try t.request("GET", "/v1/models", headers: bob).json?["data"] else {
            Issue.record("no list")
            return
        }
        #expect(listed.map { $0["id"] } == [.string("demo")])
        #expect(try t.request("GET", "/v1/models/echo", headers: bob).status == 404)
        guard case .array(let all)? = try t.request("GET", "/", headers: alice).json?["models"] else {
            Issue.record("no models")
            return
        }
        #expect(all.count == 2)
    }

    final class Vectors: EmbeddingModel {
        static var runsOnEventLoop: Bool { true }
        var dimensions: Int { 2 }
        init(context: ModelContext) throws {}
        func infer(_ request: InferenceRequest) throws -> JSON { ["embeddings": [[1, 0]]] }
    }

    /// Every route the server has, with every method, answers 401 without a key or with a wrong
    /// one unless it is one of the open probes (a route added later cannot be left open by
    /// accident); with a right key it gets past the check, and with a key its model does not allow,
    /// a 403.
    @Test func noRouteAnswersWithoutAKey() throws {
        var registry = ModelRegistry.builtin
        registry.register(Vectors.self, as: "vectors")
        var settings = Settings()
        settings.keysFile = "test"
        settings.apiKeys = try KeysFile.parse(Self.line("alice", Self.aliceKey) + "\n" + Self.line("bob", Self.bobKey, "models=echo"), path: "k")
        let t = try TestServer(serving: registry.names, registry: registry, settings: settings)
        let router = Router.standard(models: [], settings: settings)
        let paths = router.routes.map(\.pattern) + registry.names.map { "/" + $0 } + ["/v1/embeddings"]
        #expect(paths.contains("/v1/models/([^/]+)"))
        for pattern in paths {
            // A regex route is asked for with its groups filled in.
            let path = pattern.replacingGroups(with: "demo")
            let open = router.routes.first { $0.pattern == pattern }?.isOpen ?? false
            for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
                func send(_ key: String?) throws -> Int {
                    try t.request(
                        method, path, body: method == "GET" || method == "OPTIONS" ? nil : "{}",
                        headers: [("Content-Type", "application/json")] + (key.map { [("X-API-Key", $0)] } ?? [])
                    ).status
                }
                let none = try send(nil), wrong = try send("msk-wrong-key-0000"), right = try send(Self.aliceKey)
                if open {
                    #expect(none != 401 && wrong != 401, "\(method) \(path)")
                } else {
                    #expect(none == 401 && wrong == 401, "\(method) \(path) answered \(none), \(wrong) without a right key")
                    #expect(right != 401, "\(method) \(path) refused a right key")
                }
                // bob may use echo only: every other model's route is a 403 for him.
                if registry.names.contains(String(path.dropFirst())) && path != "/echo" {
                    #expect(try send(Self.bobKey) == 403, "\(method) \(path) for a key without the model")
                }
            }
        }
        #expect(router.routes.filter(\.isOpen).map(\.pattern) == ["/status.json", "/status", "/healthz", "/readyz", "/metrics", "/health"])
    }

    @Test func openAIRoutesAnswerInOpenAIsShape() throws {
        let t = try Self.server()
        let r = try t.request("GET", "/v1/models/demo", headers: [("Authorization", "Bearer msk-not-a-key-abcd")])
        #expect(r.status == 401)
        #expect(r.json?["error"]?["code"] == "invalid_api_key" && r.json?["error"]?["type"] == "authentication_error")
        #expect(r.json?["error"]?["message"] == "Incorrect API key provided: ...abcd")
        #expect(!r.text.contains("msk-not-a-key"))
    }

    @Test func metricsCanNeedAKey() throws {
        var settings = Settings()
        settings.keysFile = "test"
        settings.metricsAccess = "keyed"
        let t = try TestServer(serving: ["demo"], settings: settings)
        #expect(try t.request("GET", "/metrics").status == 401)
        #expect(try t.request("GET", "/healthz").status == 200)
    }
}

extension String {
    /// `/v1/models/([^/]+)` with each parenthesised group replaced by `value`.
    func replacingGroups(with value: String) -> String {
        var out = ""
        var depth = 0
        for c in self {
            if c == "(" { if depth == 0 { out += value }; depth += 1 } else if c == ")" { depth -= 1 } else if depth == 0 { out.append(c) }
        }
        return out
    }
}

/// Per-key limits: the rate decision (pure) and the shared counters.
struct KeyLimitTests {
    @Test func aKeyMaySendOneSecondsWorthAtOnceThenAtItsPace() {
        var tat: UInt64 = 0
        var allowed = 0
        let now: UInt64 = 10_000_000
        for _ in 0..<10 {
            if case .allowed(let next) = RateLimit.decide(tat: tat, now: now, rps: 4) { tat = next; allowed += 1 }
        }
        #expect(allowed == 4)
        #expect(RateLimit.decide(tat: tat, now: now, rps: 4) == .refused(retryAfter: 1))
        // A quarter of a second later, one more.
        #expect(RateLimit.decide(tat: tat, now: now + 250_000, rps: 4) == .allowed(nextTAT: tat + 250_000))
        // Under one a second: one at once, then one every 1/rps seconds, said in whole seconds.
        guard case .allowed(let t) = RateLimit.decide(tat: 0, now: now, rps: 0.2) else { Issue.record("first"); return }
        #expect(RateLimit.decide(tat: t, now: now, rps: 0.2) == .refused(retryAfter: 5))
        #expect(RateLimit.decide(tat: t, now: now + 5_000_000, rps: 0.2) != .refused(retryAfter: 1))
    }

    @Test func inFlightIsCountedOverWorkersAndADeadWorkersShareIsReturned() throws {
        let board = try Scoreboard()
        let keys = board.keys.assignSlots([APIKey(name: "a", hash: [], maxInFlight: 3), APIKey(name: "b", hash: [], rateLimit: 2)])
        #expect(keys.map(\.slot) == [0, 1])
        #expect(board.keys.assignSlots([APIKey(name: "b", hash: []), APIKey(name: "c", hash: [])]).map(\.slot) == [1, 2])
        let a = keys[0]
        #expect(board.keys.admit(a, record: 0) == .admitted)
        #expect(board.keys.admit(a, record: 1) == .admitted)
        #expect(board.keys.admit(a, record: 1) == .admitted)
        #expect(board.keys.admit(a, record: 0) == .overInFlight)
        board.keys.release(a, record: 0)
        #expect(board.keys.inFlight(0) == 2)
        // Worker 1 dies with two in flight: they are no longer counted.
        board.release(1)
        #expect(board.keys.inFlight(0) == 0)
        let b = keys[1]
        #expect(board.keys.admit(b, record: 0, now: 100) == .admitted)
        #expect(board.keys.admit(b, record: 0, now: 100) == .admitted)
        #expect(board.keys.admit(b, record: 0, now: 100) == .overRate(retryAfter: 1))
        let text = board.prometheusText(byKey: true)
        #expect(text.contains("mserve_key_requests_total{key=\"a\"} 3\n"))
        #expect(text.contains("mserve_key_refused_total{key=\"a\",limit=\"in_flight\"} 1\n"))
        #expect(text.contains("mserve_key_refused_total{key=\"b\",limit=\"rps\"} 1\n"))
        #expect(text.contains("mserve_key_in_flight{key=\"b\"} 2\n"))
        // Key names are identities: not on a scrape without a key.
        #expect(!board.prometheusText(byKey: false).contains("key="))
    }
}

/// Signed requests: mserve's HMAC form and go-infer's, and the shared nonce log.
struct SignatureTests {
    static let key = "msk-signer-000000000000000000000000000"
    static let keys = [APIKey(name: "signer", hash: RequestSignature.signingSecret(ofKey: key))]

    /// go-infer's doc/API.md example (its Chinese version: the English one kept the hash of this text).
    @Test func goInfersDocumentedExample() throws {
        let body: JSON = [
            "appId": "3EA25569454745D01219080B779F021F", "version": "1", "signType": "SHA256", "encType": "plain",
            "timestamp": 1658716494, "data": ["text": "测试测试", "image": ""], "signData": "ignored"
        ]
        let text = try #require(RequestSignature.goInferString(body, secret: "41DF0E6AE27B5282C07EF5124642A352"))
        #expect(
            text
                == #"appId=3EA25569454745D01219080B779F021F&data={"image":"","text":"测试测试"}&encType=plain&signType=SHA256&timestamp=1658716494&version=1&key=41DF0E6AE27B5282C07EF5124642A352"#
        )
        let hex = Crypto.hex(Crypto.sha256(Array(text.utf8)))
        #expect(hex == "a68c1b852a650314afaad684f3652c336c9b969e943825a29380b516de746ece")
        let signature = try #require(RequestSignature.goInferSignature(body, secret: "41DF0E6AE27B5282C07EF5124642A352"))
        #expect(signature == "YTY4YzFiODUyYTY1MDMxNGFmYWFkNjg0ZjM2NTJjMzM2YzliOTY5ZTk0MzgyNWEyOTM4MGI1MTZkZTc0NmVjZQ==")
        #expect(RequestSignature.goJSON(["b": "<&>", "a": [["z": 1, "y": 2]]]) == #"{"a":[{"y":2,"z":1}],"b":"\u003c\u0026\u003e"}"#)
    }

    @Test func goInferRequestsAreCheckedWithTheKeysHashAsSecret() {
        var body: JSON = ["appId": "signer", "signType": "SHA256", "timestamp": 1000, "data": ["text": "x"]]
        let sig = RequestSignature.goInferSignature(body, secret: Crypto.hex(Self.keys[0].hash)) ?? ""
        body = body.setting("signData", .string(sig))
        guard case .success(let (k, claim)) = RequestSignature.verifyGoInfer(body, now: 1100, window: 300, keys: Self.keys) else {
            Issue.record("refused")
            return
        }
        #expect(k.name == "signer" && claim.nonce == sig)
        #expect(RequestSignature.verifyGoInfer(body, now: 1400, window: 300, keys: Self.keys).failure == .stale(1000, window: 300))
        let tampered = body.setting("data", ["text": "y"])
        #expect(RequestSignature.verifyGoInfer(tampered, now: 1100, window: 300, keys: Self.keys).failure == .mismatch)
        #expect(
            RequestSignature.verifyGoInfer(body.setting("appId", "other"), now: 1100, window: 300, keys: Self.keys).failure == .unknownKey("other"))
        #expect(
            RequestSignature.verifyGoInfer(body.setting("signType", "SM2"), now: 1100, window: 300, keys: Self.keys).failure
                == .malformed("signType must be SHA256"))
    }

    @Test func hmacSignaturesCoverMethodPathTimeNonceAndBody() {
        let secret = RequestSignature.signingSecret(ofKey: Self.key)
        let nonce = "n-0123456789abcdef"
        let sig = RequestSignature.sign(secret: secret, method: "POST", target: "/demo", timestamp: 5000, nonce: nonce, body: Array("{}".utf8))
        func check(
            method: String = "POST", target: String = "/demo", timestamp: String = "5000", nonce: String = nonce,
            signature: String = sig, body: String = "{}", now: Double = 5100
        ) -> RequestSignature.Failure? {
            RequestSignature.verify(
                keyName: "signer", timestamp: timestamp, nonce: nonce, signature: signature, method: method,
                target: target, body: Array(body.utf8), now: now, window: 300, keys: Self.keys
            ).failure
        }
        #expect(check() == nil)
        #expect(check(signature: sig.uppercased()) == nil)
        #expect(check(method: "PUT") == .mismatch && check(target: "/echo") == .mismatch && check(body: "{ }") == .mismatch)
        #expect(check(nonce: "n-0123456789abcdeX") == .mismatch)
        #expect(check(now: 5301) == .stale(5000, window: 300) && check(now: 4699) == .stale(5000, window: 300))
        #expect(check(timestamp: "soon") == .malformed("X-MServe-Timestamp must be Unix seconds"))
        #expect(check(nonce: "short") == .malformed("X-MServe-Nonce must be 16 to 128 printable characters"))
    }

    @Test func aNonceIsFreshOnceWithinItsWindow() throws {
        let log = try NonceLog()
        #expect(log.remember(key: "a", nonce: "n1", expiry: 1300, now: 1000) == .fresh)
        #expect(log.remember(key: "a", nonce: "n1", expiry: 1300, now: 1200) == .seen)
        #expect(log.remember(key: "b", nonce: "n1", expiry: 1300, now: 1200) == .fresh)
        // Past its expiry the entry is free again (the timestamp check refuses such a request first).
        #expect(log.remember(key: "a", nonce: "n1", expiry: 1700, now: 1400) == .fresh)
        var fresh = 0
        for i in 0..<10_000 where log.remember(key: "a", nonce: "many-\(i)", expiry: 2000, now: 1500) == .fresh { fresh += 1 }
        #expect(fresh == 10_000)
    }
}

extension Result {
    var failure: Failure? { if case .failure(let f) = self { f } else { nil } }
}
