import Glibc
import UrunCLI
import UrunKernel
import UrunProcess
import UrunUserNS

/// `urun unshare`: podman's way to reach what containers left behind.
enum UnshareCommand: Command {
    static let spec = CommandSpec(
        name: "unshare", abstract: "Run a command as root of a user namespace with your subordinate ids",
        discussion: """
            The namespace maps ids as containers' do: you are root, your subordinate ids are the other users. \
            Files a container wrote as another user belong to a subordinate id on the host: remove or change \
            them here (urun unshare rm -rf DIR). Without COMMAND, your shell. The exit status is the command's.
            """,
        options: [],
        arguments: [ArgumentSpec("COMMAND", help: "The command and its arguments (default: $SHELL, else /bin/sh)", optional: true, variadic: true)],
        optionsEndAtFirstArgument: true,
        examples: ["urun unshare rm -rf build/", "urun unshare ls -ln data/"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        guard let map = try IDMap.subordinateForCaller(.subids) else {
            throw UrunError.invalid("urun unshare needs subordinate ids (/etc/subuid and newuidmap)")
        }
        let shell = environment("SHELL").flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/bin/sh"
        let command = arguments.positionals.isEmpty ? [shell] : arguments.positionals
        return ExitStatus(waitStatus: try runUnshared(command, map: map)).code
    }
}
