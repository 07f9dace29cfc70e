import MServe
import MServePOSIX

/// `mserve keys add NAME` and `mserve keys list`: the keys file without a text editor.  A new key
/// is printed once and only its hash is written.
public enum KeysCommand {
    static let usage = """
        usage: mserve keys add NAME --file FILE [--groups G1,G2] [--models M1,M2] [--rps N] [--in-flight N]
               mserve keys list --file FILE

        add   makes a random key, prints it once, and appends its name and SHA-256 to FILE
              (created with mode 0600); HUP or `mserve ctl -c "keys reload"` puts it in force.
        list  shows each key's name, groups, models and limits; never a key.

        """

    public static func run(_ arguments: [String]) -> Int32 {
        guard let verb = arguments.first, verb == "add" || verb == "list" else {
            printError(usage)
            return arguments.first == "-h" || arguments.first == "--help" ? ExitCode.ok : ExitCode.usage
        }
        var file: String?
        var key = APIKey(name: "", hash: [])
        var i = 1
        do throws(ConfigError) {
            func value(_ flag: String) throws(ConfigError) -> String {
                i += 1
                guard i < arguments.count else { throw ConfigError("\(flag) needs a value") }
                return arguments[i]
            }
            while i < arguments.count {
                let a = arguments[i]
                switch a {
                case "--file", "-f": file = try value(a)
                case "--groups": key.groups = try value(a).split(separator: ",").map(String.init)
                case "--models": key.models = try value(a).split(separator: ",").map(String.init)
                case "--rps":
                    let v = try value(a)
                    guard let n = Double(v), n > 0 else { throw ConfigError("--rps: expected a positive number, got \(v)") }
                    key.rateLimit = n
                case "--in-flight":
                    let v = try value(a)
                    guard let n = Int(v), n > 0 else { throw ConfigError("--in-flight: expected a positive whole number, got \(v)") }
                    key.maxInFlight = n
                default:
                    guard verb == "add", key.name.isEmpty, !a.hasPrefix("-") else { throw ConfigError("unexpected \(a)") }
                    key.name = a
                }
                i += 1
            }
            guard let file else { throw ConfigError("--file FILE is needed (the server's --keys-file)") }
            return verb == "add" ? try add(key, to: file) : try list(file)
        } catch {
            printError("mserve keys: \(error)\n\n\(usage)")
            return ExitCode.usage
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
