import Glibc
import UrunCLI
import UrunKernel

enum CLI {
static func main(_ arguments: [String]) -> Int32 {
    var arguments = arguments
    var globals = Globals()
    while let first = arguments.first, first.hasPrefix("-") {
        if first == "--root" || first.hasPrefix("--root=") {
            if first == "--root" {
                guard arguments.count > 1 else { return CLI.usage(UsageError(message: "flag needs an argument: --root", command: "")) }
                globals.root = arguments[1]
                arguments.removeFirst(2)
            } else {
                globals.root = String(first.dropFirst("--root=".count))
                arguments.removeFirst()
            }
        } else if first == "--help" || first == "-h" {
            print(globalHelp, terminator: "")
            return 0
        } else if first == "--version" {
            print("urun version \(urunVersion)")
            return 0
        } else {
            break  // an option of `run`, for the `urun [OPTIONS] IMAGE ...` shorthand
        }
    }
    guard !arguments.isEmpty else {
        writeQuietly(2, globalHelp)
        return 125
    }
    if otherToolsVerbs.contains(arguments[0]) && fileStatus(arguments[0], followLinks: true) == nil {
        // `urun commit ...` from docker's or podman's habits: not an image named "commit".
        let verbs = commands.filter { !$0.spec.hidden }.map { $0.spec.name }
        writeQuietly(2, "urun: '\(arguments[0])' is not a urun command; urun's commands are: \(verbs.joined(separator: ", "))\nSee 'urun --help'.\n")
        return 125
    }
    let command: any Command.Type
    if arguments.count > 1, let verb = commands.first(where: { $0.spec.name == arguments[0] + " " + arguments[1] }) {
        command = verb  // `urun image prune`, `urun system df`
        arguments.removeFirst(2)
    } else if commands.contains(where: { $0.spec.name.hasPrefix(arguments[0] + " ") }) {
        // `urun volume` alone, or with a verb it lacks: name the ones it has.
        let verbs = commands.map { $0.spec.name }.filter { $0.hasPrefix(arguments[0] + " ") }
        return CLI.usage(UsageError(message: "urun \(arguments[0]) needs one of: \(verbs.joined(separator: ", "))", command: ""))
    } else if let verb = commands.first(where: { $0.spec.name == arguments[0] }) {
        command = verb
        arguments.removeFirst()
    } else {
        command = RunCommand.self  // `urun IMAGE [COMMAND...]` is `urun run IMAGE [COMMAND...]`
    }

    let parsed: ParsedArguments
    do {
        parsed = try parse(arguments, as: command.spec)
    } catch {
        return CLI.usage(error)
    }
    if parsed.wantsHelp {
        print(command.spec.help, terminator: "")
        return 0
    }
    do {
        return try command.run(parsed, globals)
    } catch let error as UsageError {
        return CLI.usage(error)
    } catch let error as UrunError {
        if case .usage(let message) = error {
            return CLI.usage(UsageError(message: message, command: command.spec.name))
        }
        var message = error.description
        if let reference = error.missingImage, let bare = parsed.argumentAfterBareOption, bare.argument == reference {
            message += "; if \"\(printable(reference))\" was meant as the value of --\(bare.option), write --\(bare.option)=\(printable(reference))"
        }
        writeQuietly(2, "urun: \(printableMessage(message))\n")
        return error.exitCode
    } catch {
        writeQuietly(2, "urun: \(printableMessage(String(describing: error)))\n")
        return 125
    }
}

static func usage(_ error: UsageError) -> Int32 {
    let verb = error.command.isEmpty ? "" : " \(error.command)"
    writeQuietly(2, "urun: \(printableMessage(error.message))\nSee 'urun\(verb) --help'.\n")
    return 125
}
}

/// Verbs of docker and podman that urun does not have (yet): typed from
/// habit, each is said to be no urun command rather than taken for an image.
let otherToolsVerbs: Set<String> = [
    "build", "builder", "buildx", "compose", "config", "container", "context", "diff", "events",
    "history", "info", "init", "kube",
    "machine", "manifest", "mount", "network", "pod", "port", "rename", "search", "secret",
    "service", "stack", "swarm", "top", "trust", "unmount", "untag", "update", "version",
]

/// Options that come before the verb.
struct Globals {
    var root: String?

    /// The same options, for a urun that this one starts (a monitor).
    var arguments: [String] { root.map { ["--root", $0] } ?? [] }

    /// Where urun keeps things, made private before anything is put there.
    func paths() throws -> UrunPaths {
        let paths = try UrunPaths.resolve(root: root)
        try paths.makePrivate()
        return paths
    }
}

/// One verb of the command line.
protocol Command {
    static var spec: CommandSpec { get }
    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32
}

let urunVersion = "0.1.0"

/// Every verb, in the order `urun --help` lists them.
var commands: [any Command.Type] {
    [
        RunCommand.self, CreateCommand.self, StartCommand.self, StopCommand.self, RestartCommand.self, KillCommand.self,
        PauseCommand.self, UnpauseCommand.self, ExecCommand.self, AttachCommand.self, LogsCommand.self, PsCommand.self,
        InspectCommand.self, WaitCommand.self, StatsCommand.self, RemoveCommand.self, CopyCommand.self,
        CommitCommand.self, ExportCommand.self, PullCommand.self,
        PushCommand.self, LoginCommand.self, LogoutCommand.self, ImagesCommand.self, ImageInspectCommand.self, TagCommand.self, SaveCommand.self, LoadCommand.self,
        ImportCommand.self, RmiCommand.self, VolumeCreateCommand.self, VolumeListCommand.self, VolumeInspectCommand.self,
        VolumeRemoveCommand.self, VolumePruneCommand.self, HealthcheckRunCommand.self, GenerateSystemdCommand.self, UnshareCommand.self, ImagePruneCommand.self, SystemPruneCommand.self, SystemDfCommand.self, DoctorCommand.self, CompletionCommand.self,
        MonitorCommand.self, ManPageCommand.self,
    ]
}

var globalHelp: String {
    var text = """
        Usage:  urun [--root DIR] COMMAND [OPTIONS] [ARG...]
                urun [OPTIONS] IMAGE [COMMAND] [ARG...]      (short for urun run)

        Rootless containers: an ordinary user runs an image as root inside its own
        user, mount, PID, UTS, IPC, network and cgroup namespaces. No daemon, no setuid helper.

        Commands:

        """
    for command in commands where !command.spec.hidden {
        let name = command.spec.name
        text += "  \(name)" + String(repeating: " ", count: max(1, 14 - name.count)) + command.spec.abstract + "\n"
    }
    text += """

        Global options:
              --root DIR    Keep images, containers and state under DIR (also: URUN_ROOT)
          -h, --help        Show this help
              --version     Print the version

        Run 'urun COMMAND --help' for a command's options.

        """
    return text
}
