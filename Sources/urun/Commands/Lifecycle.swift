import Glibc
import UrunCLI
import UrunContainer
import UrunKernel
import UrunProcess

/// Runs `body` for each container named on the command line, as docker's
/// multi-container verbs do: an error is printed and the next one is tried;
/// the status is 1 if any failed.
func forEachContainer(
    _ arguments: ParsedArguments, _ containers: Containers, _ body: (ContainerRecord) throws -> Void
) -> Int32 {
    var status: Int32 = 0
    for reference in arguments.positionals {
        do {
            try body(try containers.store.resolve(reference))
        } catch {
            writeQuietly(2, "urun: \(printableMessage(String(describing: error)))\n")
            status = 1
        }
    }
    return status
}

func containers(_ globals: Globals) throws -> Containers {
    Containers(paths: try globals.paths(), globalArguments: globals.arguments)
}

let containerArguments = [ArgumentSpec("CONTAINER", help: "A name, an id or a unique prefix of one", variadic: true)]

enum StartCommand: Command {
    static let spec = CommandSpec(
        name: "start", abstract: "Start stopped or created containers",
        options: [
            OptionSpec("attach", short: "a", help: "Attach to its output and wait for it (one container)"),
            OptionSpec("interactive", short: "i", help: "Attach stdin as well"),
        ],
        arguments: containerArguments)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        if arguments.flag("attach") {
            guard arguments.positionals.count == 1 else { throw UrunError.usage("start -a takes one container") }
            let record = try containers.store.resolve(arguments.positionals[0])
            return try attached(record, containers, sendInput: arguments.flag("interactive"))
        }
        return forEachContainer(arguments, containers) { record in
            _ = try containers.start(record)
            print(record.name)
        }
    }

    /// Starts `record` with this terminal attached; its exit code, or 0 on
    /// detach. With `sendInput` and no terminal, urun's stdin itself becomes
    /// the container's: it reads what it reads and leaves the rest, as a
    /// command would (`seq 5 | { urun run -i --name x IMAGE head -1; cat; }`).
    static func attached(_ record: ContainerRecord, _ containers: Containers, sendInput: Bool) throws -> Int32 {
        let handsStdin = sendInput && !record.spec.tty
        guard let socket = try containers.start(record, attach: .client(stdin: handsStdin ? 0 : nil)) else {
            throw UrunError.invalid("container \(record.name) is already running; use urun attach")
        }
        defer { closeQuietly(socket) }
        let client = AttachClient(socket: socket, tty: record.spec.tty, sendInput: sendInput && !handsStdin) { signal in
            try? containers.kill(record, signal: signal)
        }
        switch client.run() {
        case .detached: return 0
        case .exited(let code):
            if let code { return code }
            return containers.wait(record) ?? 125
        }
    }
}

enum AttachCommand: Command {
    static let spec = CommandSpec(
        name: "attach", abstract: "Attach this terminal to a running container (detach with ctrl-p ctrl-q)",
        options: [OptionSpec("no-stdin", help: "Do not attach stdin")],
        arguments: [ArgumentSpec("CONTAINER", help: "A name, an id or a unique prefix of one")])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let record = try containers.store.resolve(arguments.positionals[0])
        guard containers.store.state(record.id).status == .running else {
            throw UrunError.invalid("container \(record.name) is not running")
        }
        let socket = try containers.connectAttach(record.id)
        defer { closeQuietly(socket) }
        let client = AttachClient(
            socket: socket, tty: record.spec.tty, sendInput: !arguments.flag("no-stdin") && record.spec.interactive
        ) { signal in try? containers.kill(record, signal: signal) }
        switch client.run() {
        case .detached: return 0
        case .exited(let code): return code ?? containers.wait(record) ?? 125
        }
    }
}

enum StopCommand: Command {
    static let spec = CommandSpec(
        name: "stop", abstract: "Stop containers: the stop signal, then SIGKILL after a timeout",
        options: [OptionSpec("time", short: "t", value: "SECONDS", help: "Seconds to wait before SIGKILL (default: the container's, 10)")],
        arguments: containerArguments)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let timeout = try ContainerOptions.stopTimeout(arguments, "time")
        return forEachContainer(arguments, containers) { record in
            try containers.stop(record, timeout: timeout)
            print(record.name)
        }
    }
}

enum RestartCommand: Command {
    static let spec = CommandSpec(
        name: "restart", abstract: "Stop, then start containers again (their writes survive)",
        options: [OptionSpec("time", short: "t", value: "SECONDS", help: "Seconds to wait before SIGKILL")],
        arguments: containerArguments)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let timeout = try ContainerOptions.stopTimeout(arguments, "time")
        return forEachContainer(arguments, containers) { record in
            try containers.stop(record, timeout: timeout)
            _ = try containers.start(record)
            print(record.name)
        }
    }
}

enum KillCommand: Command {
    static let spec = CommandSpec(
        name: "kill", abstract: "Send a signal to containers (default SIGKILL)",
        options: [OptionSpec("signal", short: "s", value: "SIGNAL", help: "The signal: a name (TERM, SIGHUP) or a number")],
        arguments: containerArguments)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let text = arguments.value("signal") ?? "KILL"
        guard let signal = parseSignal(text) else { throw UrunError.usage("invalid signal: \(text)") }
        let containers = try containers(globals)
        return forEachContainer(arguments, containers) { record in
            try containers.kill(record, signal: signal)
            print(record.name)
        }
    }
}

enum PauseCommand: Command {
    static let spec = CommandSpec(
        name: "pause", abstract: "Freeze every process of containers (cgroup v2 freezer)", options: [],
        arguments: containerArguments)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        return forEachContainer(arguments, containers) { record in
            try containers.setPaused(record, true)
            print(record.name)
        }
    }
}

enum UnpauseCommand: Command {
    static let spec = CommandSpec(
        name: "unpause", abstract: "Thaw paused containers", options: [], arguments: containerArguments)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        return forEachContainer(arguments, containers) { record in
            try containers.setPaused(record, false)
            print(record.name)
        }
    }
}

enum WaitCommand: Command {
    static let spec = CommandSpec(
        name: "wait", abstract: "Wait for containers to stop; print their exit codes", options: [],
        arguments: containerArguments)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        return forEachContainer(arguments, containers) { record in
            let code = containers.wait(record)
            print(code.map(String.init) ?? "unknown")
        }
    }
}

enum RemoveCommand: Command {
    static let spec = CommandSpec(
        name: "rm", abstract: "Remove containers (a running one only with -f)",
        options: [
            OptionSpec("force", short: "f", help: "Kill a running container first"),
            OptionSpec("volumes", short: "v", help: "Accepted for docker's sake: urun has no anonymous volumes to remove"),
        ],
        arguments: containerArguments)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let force = arguments.flag("force")
        return forEachContainer(arguments, containers) { record in
            try containers.remove(record, force: force)
            print(record.name)
        }
    }
}

enum ExecCommand: Command {
    static let spec = CommandSpec(
        name: "exec", abstract: "Run a command in a running container",
        options: [
            OptionSpec("interactive", short: "i", help: "Keep stdin open (always: stdin is passed through)"),
            OptionSpec("tty", short: "t", help: "Allocate a terminal in the container"),
            OptionSpec("env", short: "e", value: "KEY=VALUE", help: "Set an environment variable", repeatable: true),
            OptionSpec("workdir", short: "w", value: "DIR", help: "Working directory inside the container"),
            OptionSpec("user", short: "u", value: "USER[:GROUP]", help: "Run as this user"),
        ],
        arguments: [
            ArgumentSpec("CONTAINER", help: "A name, an id or a unique prefix of one"),
            ArgumentSpec("COMMAND", help: "The command and its arguments", variadic: true),
        ],
        optionsEndAtFirstArgument: true)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        guard arguments.positionals.count >= 2 else { throw UrunError.usage("\"urun exec\" requires CONTAINER and COMMAND") }
        let containers = try containers(globals)
        let record = try containers.store.resolve(arguments.positionals[0])
        var options = ExecOptions(command: Array(arguments.positionals.dropFirst()))
        options.environment = try ContainerEnvironment.fromFlags(arguments.values("env"))
        options.workingDirectory = arguments.value("workdir")
        options.user = arguments.value("user")
        options.tty = arguments.flag("tty")
        return try containers.exec(record, options).code
    }
}

/// `urun monitor ID` (internal): the supervisor of a detached container.
enum MonitorCommand: Command {
    static let spec = CommandSpec(
        name: "monitor", abstract: "Supervise a detached container (internal: urun start runs it)",
        options: [OptionSpec("attach", help: "Wait for one attach client before starting")],
        arguments: [ArgumentSpec("ID", help: "The container's id")], hidden: true)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = ContainerStore(paths: try globals.paths())
        return Monitor(store: store, id: arguments.positionals[0], globalArguments: globals.arguments).run(report: 3, waitForClient: arguments.flag("attach"))
    }
}
