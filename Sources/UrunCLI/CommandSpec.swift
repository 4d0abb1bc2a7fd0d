/// The command line of urun, declared as data: each verb lists its options
/// and arguments once, and parsing, `--help`, the man page and the shell
/// completions are all derived from that one declaration.
///
/// urun parses its own command line instead of using swift-argument-parser:
/// that library discovers options by reflection and links FoundationEssentials,
/// which measured +3.5 to 4 ms on every `urun run` here, more than the whole
/// container start (Docs/performance.md).
public struct OptionSpec: Sendable {
    /// Long name without dashes ("env").
    public let long: String
    /// Short name ("e"), if any.
    public let short: Character?
    /// Placeholder for the value ("KEY=VALUE"); nil for a boolean flag.
    public let value: String?
    public let help: String
    /// May be given more than once (values accumulate).
    public let repeatable: Bool
    /// Values the shell completion offers (e.g. network modes), if fixed.
    public let choices: [String]
    /// Completion hint: the value is a file or directory path.
    public let completesFiles: Bool
    /// The value used when the option is given without `=VALUE`
    /// (`--explain` means `--explain=text`); such an option never takes the
    /// next argument as its value.
    public let implicitValue: String?

    public init(
        _ long: String, short: Character? = nil, value: String? = nil, help: String, repeatable: Bool = false,
        choices: [String] = [], files: Bool = false, implicitValue: String? = nil
    ) {
        self.long = long
        self.short = short
        self.value = value
        self.help = help
        self.repeatable = repeatable
        self.choices = choices
        self.completesFiles = files
        self.implicitValue = implicitValue
    }

    public var isFlag: Bool { value == nil }
}

/// A positional argument.
public struct ArgumentSpec: Sendable {
    public let name: String
    public let help: String
    public let optional: Bool
    /// Takes all remaining arguments.
    public let variadic: Bool
    public let completesFiles: Bool

    public init(_ name: String, help: String, optional: Bool = false, variadic: Bool = false, files: Bool = false) {
        self.name = name
        self.help = help
        self.optional = optional
        self.variadic = variadic
        self.completesFiles = files
    }
}

public struct CommandSpec: Sendable {
    public let name: String
    /// One line for the command list.
    public let abstract: String
    /// Paragraphs for `--help` and the man page.
    public let discussion: String
    public let options: [OptionSpec]
    public let arguments: [ArgumentSpec]
    /// Options end at the first positional argument: everything after IMAGE is
    /// the container's command and its own flags (`urun run img ls -la`).
    public let optionsEndAtFirstArgument: Bool
    public let examples: [String]
    /// Internal verbs (the monitor) are not listed.
    public let hidden: Bool

    public init(
        name: String, abstract: String, discussion: String = "", options: [OptionSpec], arguments: [ArgumentSpec] = [],
        optionsEndAtFirstArgument: Bool = false, examples: [String] = [], hidden: Bool = false
    ) {
        self.name = name
        self.abstract = abstract
        self.discussion = discussion
        // -h is help unless the verb gives it another meaning (run: --hostname, as in docker).
        let helpShort: Character? = options.contains { $0.short == "h" } ? nil : "h"
        self.options = options + [OptionSpec("help", short: helpShort, help: "Show this help")]
        self.arguments = arguments
        self.optionsEndAtFirstArgument = optionsEndAtFirstArgument
        self.examples = examples
        self.hidden = hidden
    }

    func option(long: String) -> OptionSpec? { options.first { $0.long == long } }
    func option(short: Character) -> OptionSpec? { options.first { $0.short == short } }
}
