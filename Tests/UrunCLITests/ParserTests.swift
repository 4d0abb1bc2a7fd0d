import Testing
@testable import UrunCLI

@Suite struct ParserTests {
    let spec = CommandSpec(
        name: "run", abstract: "Run",
        options: [
            OptionSpec("env", short: "e", value: "KV", help: "env", repeatable: true),
            OptionSpec("tty", short: "t", help: "tty"),
            OptionSpec("interactive", short: "i", help: "i"),
            OptionSpec("hostname", short: "h", value: "NAME", help: "host"),
            OptionSpec("rm", help: "rm"),
            OptionSpec("explain", value: "F", help: "x", implicitValue: "text"),
        ],
        arguments: [ArgumentSpec("IMAGE", help: "i"), ArgumentSpec("CMD", help: "c", optional: true, variadic: true)],
        optionsEndAtFirstArgument: true)

    @Test func optionsEndAtTheImage() throws {
        let parsed = try parse(["-e", "A=1", "--env=B=2", "-it", "img", "ls", "-la", "--rm"], as: spec)
        #expect(parsed.values("env") == ["A=1", "B=2"])
        #expect(parsed.flag("tty") && parsed.flag("interactive"))
        #expect(!parsed.flag("rm"))
        #expect(parsed.positionals == ["img", "ls", "-la", "--rm"])
    }

    @Test func shortValueForms() throws {
        #expect(try parse(["-eX=1", "img"], as: spec).values("env") == ["X=1"])
        #expect(try parse(["-te", "Y=2", "img"], as: spec).values("env") == ["Y=2"])
        #expect(try parse(["-hbox", "img"], as: spec).value("hostname") == "box")
    }

    @Test func booleanFlagsTakeExplicitValues() throws {
        #expect(try parse(["--rm=false", "img"], as: spec).flag("rm") == false)
        #expect(try parse(["--rm=true", "img"], as: spec).flag("rm"))
        #expect(throws: UsageError.self) { try parse(["--rm=maybe", "img"], as: spec) }
    }

    @Test func implicitValueNeverSwallowsTheNextArgument() throws {
        let parsed = try parse(["--explain", "img"], as: spec)
        #expect(parsed.value("explain") == "text")
        #expect(parsed.positionals == ["img"])
        #expect(try parse(["--explain=json", "img"], as: spec).value("explain") == "json")
        // Noted, so that "--explain xml" failing as an image can say what was probably meant.
        #expect(parsed.argumentAfterBareOption?.option == "explain" && parsed.argumentAfterBareOption?.argument == "img")
        #expect(try parse(["--explain=json", "img"], as: spec).argumentAfterBareOption == nil)
    }

    @Test func doubleDashEndsOptions() throws {
        #expect(try parse(["--", "-weird-image"], as: spec).positionals == ["-weird-image"])
    }

    @Test func usageErrors() {
        #expect(throws: UsageError(message: "unknown flag: --bogus", command: "run")) {
            try parse(["--bogus", "img"], as: spec)
        }
        #expect(throws: UsageError(message: "unknown shorthand flag: 'z' in -tz", command: "run")) {
            try parse(["-tz", "img"], as: spec)
        }
        #expect(throws: UsageError(message: "flag needs an argument: -e", command: "run")) {
            try parse(["-e"], as: spec)
        }
        #expect(throws: UsageError(message: "\"urun run\" requires IMAGE", command: "run")) {
            try parse(["-t"], as: spec)
        }
    }

    @Test func helpIsParsedEvenWithoutArguments() throws {
        #expect(try parse(["--help"], as: spec).wantsHelp)
    }

    @Test func helpListsEveryOption() {
        let help = spec.help
        #expect(help.hasPrefix("Usage:  urun run [OPTIONS] IMAGE [CMD...]\n"))
        for option in spec.options { #expect(help.contains("--\(option.long)")) }
        // -h belongs to --hostname here, as in docker; --help keeps only its long form.
        #expect(help.contains("-h, --hostname NAME"))
        #expect(!help.contains("-h, --help"))
    }
}
