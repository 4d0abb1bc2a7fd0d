import Glibc
import UrunContainer
import UrunKernel
import UrunOCI
import UrunProcess
import UrunSecurity

/// urun as an OCI runtime, with runc's command line: what engines call
/// (podman `--runtime`, containerd's runc shim `BinaryName`, CRI-O). Reached
/// as `urun-runc ...` (a link to urun) or `urun oci ...`. Errors exit 1, as
/// runc's do, and go to stderr and, with --log, to the log (json: one
/// {"level","msg","time"} object per line, where engines read the last one).
enum OCICommand {
    struct Globals {
        var root: String?
        var log: String?
        var logJSON = false
        var debug = false
        var rootless = "auto"
        /// --cgroup-manager=disabled: no cgroup for the container (crun's meaning).
        var cgroupsDisabled = false
    }

    static func main(_ arguments: [String]) -> Int32 {
        var args = arguments
        var globals = Globals()
        do {
            while let first = args.first, first.hasPrefix("-") {
                args.removeFirst()
                let (name, inline) = option(first)
                func value() throws -> String {
                    if let inline { return inline }
                    guard !args.isEmpty else { throw UrunError.usage("flag needs an argument: --\(name)") }
                    return args.removeFirst()
                }
                switch name {
                case "root": globals.root = try value()
                case "log": globals.log = try value()
                case "log-format":
                    let format = try value()
                    guard format == "text" || format == "json" else { throw UrunError.usage("--log-format \(printable(format)): text or json") }
                    globals.logJSON = format == "json"
                case "debug": globals.debug = true
                case "systemd-cgroup": break  // urun has no systemd driver: cgroups are made as cgroupfs paths
                case "cgroup-manager":
                    let manager = try value()
                    guard ["cgroupfs", "systemd", "disabled"].contains(manager) else {
                        throw UrunError.usage("--cgroup-manager \(printable(manager)): cgroupfs, systemd or disabled")
                    }
                    // systemd is placed as cgroupfs (urun talks to no systemd); disabled makes none.
                    globals.cgroupsDisabled = manager == "disabled"
                case "rootless":
                    globals.rootless = try value()
                    guard ["auto", "true", "false"].contains(globals.rootless) else {
                        throw UrunError.usage("--rootless \(printable(globals.rootless)): auto, true or false")
                    }
                case "criu": _ = try value()
                case "version", "v":
                    print("urun version \(urunVersion)\nspec: \(OCIDocuments.specVersion)")
                    return 0
                case "help", "h":
                    print(help, terminator: "")
                    return 0
                default: throw UrunError.usage("unknown global option --\(printable(name))")
                }
            }
            guard let verb = args.first else {
                writeQuietly(2, help)
                return 1
            }
            args.removeFirst()
            // --debug: every kernel step narrated on stderr, as `urun run --explain` does.
            if globals.debug { Explain.start(.text) }
            return try run(verb, args, globals)
        } catch {
            report(error, globals)
            return 1
        }
    }

    static let help = """
        Usage: urun-runc [global options] COMMAND [options] ID
               urun oci [global options] COMMAND [options] ID

        urun as an OCI runtime, with runc's command line.

        Commands: create, start, state, kill, delete, run, list, ps, pause, resume, update, features, spec

        Global options: --root DIR, --log FILE, --log-format text|json, --debug, --systemd-cgroup,
        --cgroup-manager cgroupfs|systemd|disabled, --rootless auto|true|false, --version

        """

    /// "--name=value", "-name" → ("name", "value"?).
    static func option(_ argument: String) -> (String, String?) {
        var body = Substring(argument.drop { $0 == "-" })
        if let eq = body.firstIndex(of: "=") {
            let value = String(body[body.index(after: eq)...])
            body = body[..<eq]
            return (String(body), value)
        }
        return (String(body), nil)
    }

    /// A verb's own options (before its arguments), runc's way: `values` take
    /// one, the rest are flags; `short` maps one-letter names.
    static func options(
        _ args: inout [String], values: Set<String>, flags: Set<String>, short: [String: String] = [:], verb: String
    ) throws -> [String: String] {
        var parsed: [String: String] = [:]
        while let first = args.first, first.hasPrefix("-"), first != "-" {
            args.removeFirst()
            if first == "--" { break }
            var (name, inline) = option(first)
            name = short[name] ?? name
            if values.contains(name) {
                if let inline {
                    parsed[name] = inline
                } else {
                    guard !args.isEmpty else { throw UrunError.usage("\(verb): flag needs an argument: --\(name)") }
                    parsed[name] = args.removeFirst()
                }
            } else if flags.contains(name) {
                parsed[name] = inline ?? "true"
            } else {
                throw UrunError.usage("\(verb): unknown option --\(printable(name))")
            }
        }
        return parsed
    }

    static func id(_ args: [String], _ verb: String) throws -> String {
        guard let id = args.first else { throw UrunError.usage("\(verb) needs a container id") }
        return id
    }

    static func run(_ verb: String, _ arguments: [String], _ globals: Globals) throws -> Int32 {
        var args = arguments
        let runtime = OCIRuntime(root: try stateRoot(globals))
        let rootless = globals.rootless == "auto" ? getuid() != 0 : globals.rootless == "true"
        func createOptions(_ o: [String: String]) throws -> OCIRuntime.CreateOptions {
            var options = OCIRuntime.CreateOptions()
            options.pidFile = o["pid-file"]
            options.consoleSocket = o["console-socket"]
            options.rootless = rootless
            options.cgroups = !globals.cgroupsDisabled
            if let fds = o["preserve-fds"] {
                guard let n = Int32(fds), (0...1024).contains(n) else { throw UrunError.usage("--preserve-fds \(printable(fds)): 0 to 1024") }
                options.preserveFDs = n
            }
            return options
        }
        let createValues: Set<String> = ["bundle", "pid-file", "console-socket", "preserve-fds"]
        let createFlags: Set<String> = ["no-pivot", "no-new-keyring"]
        switch verb {
        case "create":
            let o = try options(&args, values: createValues, flags: createFlags, short: ["b": "bundle"], verb: verb)
            try runtime.create(try id(args, verb), bundle: o["bundle"] ?? ".", options: try createOptions(o))
        case "run":
            let o = try options(&args, values: createValues, flags: createFlags.union(["detach", "keep"]), short: ["b": "bundle", "d": "detach"], verb: verb)
            return try runtime.run(try id(args, verb), bundle: o["bundle"] ?? ".", options: try createOptions(o), detach: o["detach"] == "true")
        case "start":
            _ = try options(&args, values: [], flags: [], verb: verb)
            try runtime.start(try id(args, verb))
        case "state":
            _ = try options(&args, values: [], flags: [], verb: verb)
            print(try runtime.state(try id(args, verb)).pretty())
        case "kill":
            let o = try options(&args, values: [], flags: ["all"], short: ["a": "all"], verb: verb)
            let name = args.count > 1 ? args[1] : "SIGTERM"
            guard let signal = parseSignal(name) else { throw UrunError.usage("kill: invalid signal \(printable(name))") }
            try runtime.kill(try id(args, verb), signal: signal, all: o["all"] == "true")
        case "delete":
            let o = try options(&args, values: [], flags: ["force"], short: ["f": "force"], verb: verb)
            try runtime.delete(try id(args, verb), force: o["force"] == "true")
        case "list":
            let o = try options(&args, values: ["format"], flags: ["quiet"], short: ["f": "format", "q": "quiet"], verb: verb)
            let states = runtime.list()
            if o["quiet"] == "true" {
                for state in states { print(state["id"]?.string ?? "") }
            } else if o["format"] == "json" {
                print(JSON.array(states).serialized())
            } else {
                let rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]] + states.map { s in
                    [s["id"]?.string ?? "", String(s["pid"]?.int ?? 0), s["status"]?.string ?? "", s["bundle"]?.string ?? "",
                     s["created"]?.string ?? "", s["owner"]?.string ?? ""]
                }
                print(PsCommand.align(rows), terminator: "")
            }
        case "ps":
            let o = try options(&args, values: ["format"], flags: [], short: ["f": "format"], verb: verb)
            let pids = try runtime.processes(try id(args, verb))
            if o["format"] == "json" {
                print(JSON.array(pids.map { .int($0) }).serialized())
            } else {
                print("PID")
                for pid in pids { print(pid) }
            }
        case "pause", "resume":
            _ = try options(&args, values: [], flags: [], verb: verb)
            try runtime.setPaused(try id(args, verb), verb == "pause")
        case "update":
            let o = try options(&args, values: ["resources", "r"], flags: [], short: ["r": "resources"], verb: verb)
            guard let file = o["resources"] else { throw UrunError.usage("update: urun takes the new limits as --resources FILE (or - for stdin)") }
            let text = file == "-" ? try readAll(0, path: "stdin", limit: 1 << 20) : try readInputFile(file, what: "--resources")
            try runtime.update(try id(args, verb), resources: try OCIResources(json: text, source: file == "-" ? "stdin" : file))
        case "features":
            print(OCIDocuments.features(capabilities: Capabilities.all.names.map { "CAP_" + $0 }).pretty())
        case "spec":
            let o = try options(&args, values: ["bundle"], flags: ["rootless"], short: ["b": "bundle"], verb: verb)
            let path = (o["bundle"] ?? ".") + "/config.json"
            guard access(path, F_OK) != 0 else { throw UrunError.invalid("\(path) exists; remove it first") }
            try writeFile(path, OCIDocuments.spec(rootless: o["rootless"] == "true", uid: getuid(), gid: getgid()).pretty() + "\n", flags: O_CREAT | O_EXCL)
        case "exec":
            return try exec(&args, runtime)
        case "checkpoint", "restore", "events":
            throw UrunError.invalid("\(verb) is not supported by urun yet")
        default:
            throw UrunError.usage("unknown command \(printable(verb)); see urun-runc --help")
        }
        return 0
    }

    /// `exec [--process FILE | ARGS...]`, with runc's flags adjusting the process.
    static func exec(_ args: inout [String], _ runtime: OCIRuntime) throws -> Int32 {
        var environment: [String] = []
        var caps: [String] = []
        var gids: [UInt32] = []
        var o: [String: String] = [:]
        let values: Set<String> = ["process", "pid-file", "console-socket", "cwd", "user", "preserve-fds", "apparmor", "process-label", "cgroup"]
        let short = ["p": "process", "e": "env", "u": "user", "c": "cap", "t": "tty", "d": "detach", "g": "additional-gids"]
        // Repeatable ones first, one at a time; the rest as for the other verbs.
        while let first = args.first, first.hasPrefix("-"), first != "-" {
            var (name, inline) = option(first)
            name = short[name] ?? name
            if ["env", "cap", "additional-gids"].contains(name) {
                args.removeFirst()
                guard let value = inline ?? (args.isEmpty ? nil : args.removeFirst()) else { throw UrunError.usage("exec: flag needs an argument: --\(name)") }
                if name == "env" { environment.append(value) }
                if name == "cap" { caps.append(value) }
                if name == "additional-gids" {
                    guard let gid = UInt32(value) else { throw UrunError.usage("exec: --additional-gids \(printable(value)): not a gid") }
                    gids.append(gid)
                }
                continue
            }
            var one = [args.removeFirst()]
            if inline == nil && values.contains(name), !args.isEmpty { one.append(args.removeFirst()) }
            o.merge(try options(&one, values: values, flags: ["tty", "detach", "no-new-privs", "ignore-paused"], short: short, verb: "exec")) { $1 }
        }
        let id = try self.id(args, "exec")
        var process: OCIProcess
        if let file = o["process"] {
            process = try OCIProcess(json: try readInputFile(file, what: "--process"), source: file)
        } else {
            guard args.count > 1 else { throw UrunError.usage("exec needs a command, or --process FILE") }
            // runc's defaults for a bare command: the container's own process settings.
            let state = try runtime.state(id)
            let bundle = state["bundle"]?.string ?? "."
            let config = try OCIConfig(json: try readFile(bundle + "/config.json"), source: bundle + "/config.json")
            process = config.process ?? OCIProcess(args: [], cwd: "/")
            process.args = Array(args.dropFirst())
            process.terminal = false
        }
        process.env += environment
        if let cwd = o["cwd"] { process.cwd = cwd }
        if let user = o["user"] {
            let parts = user.split(separator: ":", maxSplits: 1).map(String.init)
            guard let uid = UInt32(parts[0]), parts.count == 1 || UInt32(parts[1]) != nil else {
                throw UrunError.usage("exec: --user \(printable(user)): expected UID[:GID]")
            }
            process.uid = uid
            process.gid = parts.count == 2 ? UInt32(parts[1])! : 0
        }
        process.additionalGids += gids
        if !caps.isEmpty {
            for set in [\OCIProcess.Capabilities.bounding, \.effective, \.permitted, \.inheritable, \.ambient] {
                process.capabilities[keyPath: set] = (process.capabilities[keyPath: set] ?? []) + caps
            }
        }
        if o["no-new-privs"] == "true" { process.noNewPrivileges = true }
        if o["tty"] == "true" { process.terminal = true }
        var options = OCIRuntime.ExecOptions(process: process)
        options.detach = o["detach"] == "true"
        options.pidFile = o["pid-file"]
        options.consoleSocket = o["console-socket"]
        if let fds = o["preserve-fds"] {
            guard let n = Int32(fds), (0...1024).contains(n) else { throw UrunError.usage("--preserve-fds \(printable(fds)): 0 to 1024") }
            options.preserveFDs = n
        }
        return try runtime.exec(id, options)
    }

    /// runc's default: $XDG_RUNTIME_DIR/urun-oci for a user (or one in a user
    /// namespace, as podman runs its runtime), /run/urun-oci for real root.
    static func stateRoot(_ globals: Globals) throws -> String {
        let root: String
        if let given = globals.root {
            root = try UrunPaths.absolute(given)
        } else if getuid() == 0 && (try? readText("/proc/self/uid_map"))?.split(whereSeparator: \.isWhitespace) == ["0", "0", "4294967295"] {
            root = "/run/urun-oci"
        } else {
            let runtime = try UrunPaths.resolve().runtime
            root = runtime.hasSuffix("/urun") ? String(runtime.dropLast(5)) + "/urun-oci" : runtime + "/oci"
        }
        try makeDirectories(root, mode: 0o700)
        return root
    }

    /// One line on stderr and, with --log, in the log.
    static func report(_ error: Error, _ globals: Globals) {
        let message = printableMessage(String(describing: error))
        writeQuietly(2, "urun: \(message)\n")
        guard let log = globals.log else { return }
        let time = Timestamp.now().rfc3339
        let line = globals.logJSON
            ? JSON.object([("level", .string("error")), ("msg", .string(message)), ("time", .string(time))]).serialized()
            : "time=\"\(time)\" level=error msg=\"\(message)\""
        try? writeFile(log, line + "\n", mode: 0o600, flags: O_CREAT | O_APPEND)
    }
}
