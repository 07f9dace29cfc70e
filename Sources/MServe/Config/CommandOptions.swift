/// One option of a command (`mserve bench`, `ctl`, `keys`): its flags, the name of its value,
/// its help, and what it does to the command's options.  A command declares a list of these; its
/// parser and its `--help` are made from the list (`CommandOptions`), as the server's own flags
/// and help are made from SettingTable.
public struct CommandOption<Options>: Sendable {
    public let flags: [String]
    /// What --help calls the value; nil: a switch that takes none.
    public let metavar: String?
    public let help: String
    let apply: @Sendable (inout Options, String) throws(ConfigError) -> Void

    public init(
        _ flags: [String], _ metavar: String?, _ help: String,
        apply: @escaping @Sendable (inout Options, String) throws(ConfigError) -> Void
    ) {
        self.flags = flags
        self.metavar = metavar
        self.help = help
        self.apply = apply
    }

    /// A switch: present or not.
    public static func flag(_ flags: [String], _ help: String, _ set: @escaping @Sendable (inout Options) -> Void) -> Self {
        Self(flags, nil, help) { o, _ in set(&o) }
    }

    /// Any non-empty text.
    public static func text(
        _ flags: [String], _ metavar: String, _ help: String, _ set: @escaping @Sendable (inout Options, String) -> Void
    ) -> Self {
        Self(flags, metavar, help) { o, v throws(ConfigError) in
            guard !v.isEmpty else { throw ConfigError("\(flags.last ?? ""): expected a value, got nothing") }
            set(&o, v)
        }
    }

    /// A whole number of at least `min`.
    public static func int(
        _ flags: [String], _ metavar: String = "N", min: Int, _ help: String, _ set: @escaping @Sendable (inout Options, Int) -> Void
    ) -> Self {
        Self(flags, metavar, help) { o, v throws(ConfigError) in
            guard let n = Int(v), n >= min else { throw ConfigError("\(flags.last ?? ""): expected a whole number of at least \(min), got \(v)") }
            set(&o, n)
        }
    }

    /// A finite number from `min` to `max`.
    public static func number(
        _ flags: [String], _ metavar: String, min: Double, max: Double = .infinity, _ help: String,
        _ set: @escaping @Sendable (inout Options, Double) -> Void
    ) -> Self {
        Self(flags, metavar, help) { o, v throws(ConfigError) in
            guard let x = Double(v), x.isFinite, x >= min, x <= max else {
                let range = max.isFinite ? "from \(String(seconds: min)) to \(String(seconds: max))" : "of at least \(String(seconds: min))"
                throw ConfigError("\(flags.last ?? ""): expected a number \(range), got \(v)")
            }
            set(&o, x)
        }
    }
}

/// A command's synopsis, description, options and closing notes: what parses its arguments and
/// what `--help` prints.
public struct CommandOptions<Options>: Sendable {
    public let synopsis: String
    public let description: String
    public let options: [CommandOption<Options>]
    public let notes: String

    public init(synopsis: String, description: String, options: [CommandOption<Options>], notes: String = "") {
        self.synopsis = synopsis
        self.description = description
        self.options = options
        self.notes = notes
    }

    /// The --help text: the synopsis, the description, each option with its flags (aligned, the
    /// help wrapped under its column), `-h, --help`, and the notes.
    public var help: String {
        var out = synopsis + "\n\n" + Self.wrap(description, width: 100, indent: "") + "\n\noptions:\n"
        let column = 26
        for o in options + [CommandOption(["-h", "--help"], nil, "show this help and exit") { _, _ in }] {
            // Long-only flags line up with the long flags of the others (`-c, --concurrency`).
            let indent = o.flags.first?.hasPrefix("--") == true ? "      " : "  "
            var left = indent + o.flags.joined(separator: ", ") + (o.metavar.map { " " + $0 } ?? "")
            left += left.count + 2 <= column ? String(repeating: " ", count: column - left.count) : "\n" + String(repeating: " ", count: column)
            out += left + Self.wrap(o.help, width: 100 - column, indent: String(repeating: " ", count: column)) + "\n"
        }
        if !notes.isEmpty { out += "\n" + Self.wrap(notes, width: 100, indent: "") + "\n" }
        return out + "\n"
    }

    /// Applies each option in `arguments` to `options`, in order; returns the other arguments, or
    /// nil when --help was asked for.  `--flag=value`, `--flag value` and `-f value`; `--` ends the
    /// options.
    public func parse(_ arguments: [String], into options: inout Options) throws(ConfigError) -> [String]? {
        var rest: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            i += 1
            if a == "--" {
                rest += arguments[i...]
                break
            }
            guard a.hasPrefix("-"), a != "-" else {
                rest.append(a)
                continue
            }
            if a == "-h" || a == "--help" { return nil }
            var name = a
            var inline: String?
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
                name = String(a[..<eq])
                inline = String(a[a.index(after: eq)...])
            }
            guard let option = self.options.first(where: { $0.flags.contains(name) }) else {
                let known = self.options.flatMap(\.flags).filter { $0.hasPrefix("--") } + ["--help"]
                throw ConfigError("unknown option \(name)\(Spelling.suggestion(for: name, among: known))")
            }
            if option.metavar == nil {
                if let inline { throw ConfigError("\(name) takes no value, got '\(inline)'") }
                try option.apply(&options, "")
                continue
            }
            if let inline {
                try option.apply(&options, inline)
            } else {
                guard i < arguments.count else { throw ConfigError("\(name) needs a value (\(option.metavar ?? "a value"))") }
                try option.apply(&options, arguments[i])
                i += 1
            }
        }
        return rest
    }

    /// A command's main: `--help` printed (exit 0); a bad argument said on standard error with the
    /// help (exit 2), as is a ConfigError that `body` throws about the arguments; else what `body`
    /// returns for the options and the other arguments.
    public func run(
        _ arguments: [String], as name: String, from defaults: Options, _ body: (Options, [String]) throws(ConfigError) -> Int32
    ) -> Int32 {
        var options = defaults
        do throws(ConfigError) {
            guard let rest = try parse(arguments, into: &options) else {
                print(help, terminator: "")
                return ExitCode.ok
            }
            return try body(options, rest)
        } catch {
            printError("\(name): \(error)\n\n\(help)")
            return ExitCode.usage
        }
    }

    /// `text` in lines of at most `width` characters (a longer word stays whole), each after the
    /// first indented; the text's own line breaks are kept.
    static func wrap(_ text: String, width: Int, indent: String) -> String {
        var lines: [String] = []
        for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = ""
            for word in paragraph.split(separator: " ") {
                if !line.isEmpty && line.count + 1 + word.count > width {
                    lines.append(line)
                    line = ""
                }
                line += (line.isEmpty ? "" : " ") + word
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n" + indent)
    }
}
