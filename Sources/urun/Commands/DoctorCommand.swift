import UrunCLI
import UrunContainer
import UrunKernel

enum DoctorCommand: Command {
    static let spec = CommandSpec(
        name: "doctor", abstract: "Check what this host and user allow, and say how to fix what is missing",
        discussion: """
            One line per check: ✓ works, ! works with less (no limits, no subordinate ids, no network), ✗ urun cannot \
            run containers until it is fixed; each ! and ✗ is followed by the command that fixes it. The user namespace \
            and overlay checks are real trials in throwaway child processes. Exit status 0 when urun can run \
            containers here, 1 when it cannot (Docs/troubleshooting.md).
            """,
        options: [OptionSpec("json", help: "Print the checks as JSON, for scripts")],
        examples: ["urun doctor", "urun doctor --json | jq '.checks[] | select(.status != \"ok\")'"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let paths = try UrunPaths.resolve(root: globals.root)
        let checks = Doctor.checks(paths: paths)
        print(arguments.flag("json") ? Doctor.json(checks).pretty() : Doctor.text(checks), terminator: arguments.flag("json") ? "\n" : "")
        return Doctor.canRun(checks) ? 0 : 1
    }
}
