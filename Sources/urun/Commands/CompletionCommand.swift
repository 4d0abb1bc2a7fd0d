import UrunCLI
import UrunKernel

enum CompletionCommand: Command {
    static let spec = CommandSpec(
        name: "completion", abstract: "Print the shell completion script for bash, zsh or fish",
        discussion: "Helpers/setup installs all three; by hand: urun completion bash > ~/.local/share/bash-completion/completions/urun",
        options: [], arguments: [ArgumentSpec("SHELL", help: "bash, zsh or fish")],
        examples: ["source <(urun completion bash)", "urun completion fish > ~/.config/fish/completions/urun.fish"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let shell = arguments.positionals.first ?? ""
        guard let script = Completion.script(for: shell, commands: commands.map { $0.spec }) else {
            throw UrunError.usage("urun completion \(shell): expected one of \(Completion.shells.joined(separator: ", "))")
        }
        print(script, terminator: "")
        return 0
    }
}

/// The urun(1) man page (Docs/urun.1) or the CLI reference (Docs/cli.md),
/// from the same declarations as --help.
enum ManPageCommand: Command {
    static let spec = CommandSpec(
        name: "manpage", abstract: "Print the urun(1) man page", options: [OptionSpec("markdown", help: "The CLI reference in Markdown instead")],
        hidden: true)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let specs = commands.map { $0.spec }
        print(arguments.flag("markdown") ? ManPage.markdown(commands: specs) : ManPage.render(commands: specs, version: urunVersion), terminator: "")
        return 0
    }
}
