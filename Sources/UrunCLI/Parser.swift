/// A command-line mistake; urun prints it with a pointer to `--help` and exits 125.
public struct UsageError: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    public let command: String

    public var description: String { message }

    public init(message: String, command: String) {
        self.message = message
        self.command = command
    }
}

/// The result of parsing one verb's arguments.
public struct ParsedArguments: Sendable {
    public let command: String
    private var values: [String: [String]] = [:]
    public private(set) var positionals: [String] = []
    /// An option that takes its value only as `--option=VALUE` and the argument
    /// right after it (`--explain xml`): if that argument turns out to be no
    /// image, the user probably meant it as the value.
    public private(set) var argumentAfterBareOption: (option: String, argument: String)?

    init(command: String) {
        self.command = command
    }

    public func flag(_ long: String) -> Bool { values[long]?.last == "true" }
    public func value(_ long: String) -> String? { values[long]?.last }
    public func values(_ long: String) -> [String] { values[long] ?? [] }
    public func has(_ long: String) -> Bool { values[long] != nil }
    public var wantsHelp: Bool { flag("help") }

    mutating func add(_ long: String, _ value: String) { values[long, default: []].append(value) }
    mutating func set(_ long: String, _ value: String) { values[long] = [value] }
    mutating func addPositional(_ value: String) { positionals.append(value) }
    mutating func noteArgumentAfterBareOption(_ option: String, _ argument: String) {
        argumentAfterBareOption = (option, argument)
    }

    /// Parses a number option, or nil when it was not given.
    public func int(_ long: String) throws(UsageError) -> Int? {
        guard let text = value(long) else { return nil }
        guard let number = Int(text) else {
            throw UsageError(message: "invalid value \"\(text)\" for --\(long): not a whole number", command: command)
        }
        return number
    }
}

/// Parses `arguments` (without the verb) against `spec`, the way docker's
/// command line reads: `--name value`, `--name=value`, `-n value`, `-nvalue`,
/// bundled short flags (`-it`), `--flag=false`, and `--` ending the options.
public func parse(_ arguments: [String], as spec: CommandSpec) throws(UsageError) -> ParsedArguments {
    var result = ParsedArguments(command: spec.name)
    var index = 0
    var optionsEnded = false

    func fail(_ message: String) -> UsageError { UsageError(message: message, command: spec.name) }

    func takeValue(_ option: OptionSpec, inline: String?, shown: String) throws(UsageError) -> String {
        if let inline { return inline }
        if let implicit = option.implicitValue { return implicit }
        index += 1
        guard index < arguments.count else { throw fail("flag needs an argument: \(shown)") }
        return arguments[index]
    }

    func record(_ option: OptionSpec, _ value: String) {
        if option.repeatable { result.add(option.long, value) } else { result.set(option.long, value) }
    }

    var bareOption: String?  // the previous argument, when it was such an option without "="
    while index < arguments.count {
        let argument = arguments[index]
        let previousBareOption = bareOption
        bareOption = nil
        if optionsEnded || argument == "-" || !argument.hasPrefix("-") {
            if let previousBareOption, result.positionals.isEmpty {
                result.noteArgumentAfterBareOption(previousBareOption, argument)
            }
            result.addPositional(argument)
            if spec.optionsEndAtFirstArgument { optionsEnded = true }
        } else if argument == "--" {
            optionsEnded = true
        } else if argument.hasPrefix("--") {
            let body = argument.dropFirst(2)
            let name: String
            var inline: String?
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq])
                inline = String(body[body.index(after: eq)...])
            } else {
                name = String(body)
            }
            guard let option = spec.option(long: name) else { throw fail("unknown flag: --\(name)") }
            if option.isFlag {
                switch inline {
                case nil, "true": result.set(option.long, "true")
                case "false": result.set(option.long, "false")
                default: throw fail("invalid value \"\(inline!)\" for flag --\(name): expected true or false")
                }
            } else {
                if inline == nil && option.implicitValue != nil { bareOption = option.long }
                record(option, try takeValue(option, inline: inline, shown: "--\(name)"))
            }
        } else {
            // One or more short options: -it, -e KEY=V, -eKEY=V
            var rest = Substring(argument.dropFirst())
            while let letter = rest.first {
                rest = rest.dropFirst()
                guard let option = spec.option(short: letter) else {
                    throw fail("unknown shorthand flag: '\(letter)' in \(argument)")
                }
                if option.isFlag {
                    result.set(option.long, "true")
                    continue
                }
                var inline: String? = rest.isEmpty ? nil : String(rest)
                if inline?.hasPrefix("=") == true { inline = String(inline!.dropFirst()) }
                record(option, try takeValue(option, inline: inline, shown: "-\(letter)"))
                break
            }
        }
        index += 1
    }

    if result.wantsHelp { return result }
    let required = spec.arguments.filter { !$0.optional }.count
    if result.positionals.count < required {
        let missing = spec.arguments[result.positionals.count]
        throw fail("\"urun \(spec.name)\" requires \(missing.name)")
    }
    let variadic = spec.arguments.contains { $0.variadic }
    if !variadic && result.positionals.count > spec.arguments.count {
        throw fail("\"urun \(spec.name)\" takes at most \(spec.arguments.count) argument\(spec.arguments.count == 1 ? "" : "s")")
    }
    return result
}
