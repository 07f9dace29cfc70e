import MServe
import MServeSystem

/// `mserve keys add NAME` and `mserve keys list`: the keys file without a text editor.  A new key
/// is printed once and only its hash is written.
public enum KeysCommand {
    struct Options: Sendable {
        var file: String?
        var key = APIKey(name: "", hash: [])
    }

    static let commandLine = CommandOptions<Options>(
        synopsis: """
            usage: mserve keys add NAME --file FILE [--groups G1,G2] [--models M1,M2] [--rps N] [--in-flight N]
                   mserve keys list --file FILE
            """,
        description: """
            `add` makes a random key, prints it once, and appends its name and SHA-256 to FILE (created \
            with mode 0600); HUP or `mserve ctl -c "keys reload"` puts it in force.
            `list` shows each key's name, groups, models and limits; never a key.
            """,
        options: [
            .text(["-f", "--file"], "FILE", "the keys file (the server's --keys-file)") { $0.file = $1 },
            .text(["--groups"], "G1,G2", "add: the groups the key belongs to (model permissions name them)") {
                $0.key.groups = $1.split(separator: ",").map(String.init)
            },
            .text(["--models"], "M1,M2", "add: the only models the key may use (default: any its groups allow)") {
                $0.key.models = $1.split(separator: ",").map(String.init)
            },
            .number(["--rps"], "N", min: 0.001, "add: requests per second the key may make (a token bucket)") { $0.key.rateLimit = $1 },
            .int(["--in-flight"], min: 1, "add: requests the key may have in flight at once") { $0.key.maxInFlight = $1 }
        ])

    public static func run(_ arguments: [String]) -> Int32 {
        commandLine.run(arguments, as: "mserve keys", from: Options()) { options, rest throws(ConfigError) in
            guard let verb = rest.first, verb == "add" || verb == "list" else {
                throw ConfigError(rest.first.map { "unknown command \($0): add or list" } ?? "add or list?")
            }
            guard rest.count <= (verb == "add" ? 2 : 1) else { throw ConfigError("unexpected \(rest[verb == "add" ? 2 : 1])") }
            guard let file = options.file else { throw ConfigError("--file FILE is needed (the server's --keys-file)") }
            var key = options.key
            key.name = rest.count > 1 ? rest[1] : ""
            return verb == "add" ? try add(key, to: file) : try list(file)
        }
    }

    private static func add(_ entry: APIKey, to file: String) throws(ConfigError) -> Int32 {
        guard !entry.name.isEmpty else { throw ConfigError("a NAME is needed") }
        var existing = ""
        if fileExists(file) {
            do { existing = try FileReading.text(file) } catch { throw ConfigError("\(error)") }
        }
        let current = try KeysFile.parse(existing, path: file)
        guard !current.contains(where: { $0.name == entry.name }) else { throw ConfigError("\(file) already has a key named \(entry.name)") }
        let secret: String
        do { secret = try APIKey.generate() } catch { throw ConfigError("\(error)") }
        var key = entry
        key.hash = Crypto.sha256(Array(secret.utf8))
        // The line is checked as the server will read it before it is written.
        let line = KeysFile.line(key)
        _ = try KeysFile.parse(line, path: file)
        let text = (existing.isEmpty || existing.hasSuffix("\n") ? "" : "\n") + line + "\n"
        do { try appendToFile(file, text, mode: 0o600) } catch { throw ConfigError("\(error)") }
        print(secret)
        printError("mserve keys: added \(key.name) to \(file); the key above is shown once. Reload the server to use it.")
        return ExitCode.ok
    }

    private static func list(_ file: String) throws(ConfigError) -> Int32 {
        let keys = try KeysFile.load(file)
        let rows = keys.map { k in
            [
                k.name, k.groups.isEmpty ? "-" : k.groups.joined(separator: ","), k.models?.joined(separator: ",") ?? "(any)",
                RateLimit.text(k.rateLimit), k.maxInFlight.map(String.init) ?? "-"
            ]
        }
        print(ControlClient.aligned([["name", "groups", "models", "rps", "in_flight"]] + rows), terminator: "")
        return ExitCode.ok
    }
}
