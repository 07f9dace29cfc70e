import Testing

@testable import MServe

/// A command's declared options: what the parser does with them and what --help shows.
struct CommandOptionsTests {
    struct Options: Sendable, Equatable {
        var count = 1
        var rate = 0.5
        var name: String?
        var loud = false
    }

    static let command = CommandOptions<Options>(
        synopsis: "usage: tool THING [options]",
        description: "Does a thing, with words enough that the description has to be wrapped at a hundred columns to fit a terminal.",
        options: [
            .int(["-n", "--count"], min: 1, "how many") { $0.count = $1 },
            .number(["--rate"], "R", min: 0, max: 1, "a share") { $0.rate = $1 },
            .text(["--name"], "NAME", "what to call it") { $0.name = $1 },
            .flag(["-l", "--loud"], "say it loudly") { $0.loud = true }
        ],
        notes: "A note after the options.")

    func parse(_ args: [String]) throws(ConfigError) -> (Options, [String])? {
        var o = Options()
        guard let rest = try Self.command.parse(args, into: &o) else { return nil }
        return (o, rest)
    }

    @Test func optionsAreAppliedInOrderAndTheRestIsKept() throws {
        let (o, rest) = try #require(try parse(["a", "-n", "3", "--rate=0.25", "--loud", "b", "--name", "x", "-n", "4"]))
        #expect(o == Options(count: 4, rate: 0.25, name: "x", loud: true))
        #expect(rest == ["a", "b"])
        // After --, everything is an argument; a lone - is one too.
        let (_, after) = try #require(try parse(["--", "-n", "-"]))
        #expect(after == ["-n", "-"])
        #expect(try parse(["x", "--help"]) == nil && (try parse(["-h"])) == nil)
    }

    @Test func badArgumentsSayWhatIsWrong() {
        #expect(throws: ConfigError("--count: expected a whole number of at least 1, got 0")) { try parse(["-n", "0"]) }
        #expect(throws: ConfigError("--rate: expected a number from 0 to 1, got 2")) { try parse(["--rate", "2"]) }
        #expect(throws: ConfigError("--rate needs a value (R)")) { try parse(["--rate"]) }
        #expect(throws: ConfigError("--loud takes no value, got 'yes'")) { try parse(["--loud=yes"]) }
        #expect(throws: ConfigError("unknown option --nmae (did you mean --name?)")) { try parse(["--nmae", "x"]) }
        #expect(throws: ConfigError("--name: expected a value, got nothing")) { try parse(["--name="]) }
    }

    @Test func helpShowsEveryOptionWithinAHundredColumns() {
        let help = Self.command.help
        for o in Self.command.options + [CommandOption(["-h", "--help"], nil, "") { _, _ in }] {
            #expect(help.contains(o.flags.joined(separator: ", ")), "\(o.flags)")
        }
        #expect(help.hasPrefix("usage: tool THING [options]\n\nDoes a thing"))
        #expect(help.contains("  -n, --count N           how many\n      --rate R            a share\n"))
        #expect(help.hasSuffix("\nA note after the options.\n\n"))
        #expect(help.split(separator: "\n").allSatisfy { $0.count <= 100 })
    }
}
