import Glibc
import UrunCLI
import UrunContainer
import UrunKernel
import UrunRootfs

/// `urun run`: create and run a container in the foreground.
enum RunCommand: Command {
    static let spec = CommandSpec(
        name: "run",
        abstract: "Run a command in a new container",
        discussion: """
            IMAGE is a rootfs tarball (plain, gzip, xz, zstd or bzip2, recognised by content) or a directory. \
            A tarball is unpacked once into the cache; every container of it shares that copy as the read-only \
            lower layer of an overlay and writes to its own upper layer, removed when the container ends.
            Without COMMAND the container runs /bin/sh. When stdin and stdout are terminals, -i and -t are implied. \
            stdin is always passed through to a foreground container, so `echo hi | urun IMAGE cat` works.
            """,
        options: [
            OptionSpec("env", short: "e", value: "KEY=VALUE", help: "Set an environment variable (KEY alone: take it from urun's environment)", repeatable: true),
            OptionSpec("env-file", value: "FILE", help: "Read environment variables from FILE", repeatable: true, files: true),
            OptionSpec("workdir", short: "w", value: "DIR", help: "Working directory inside the container (created if missing)"),
            OptionSpec("user", short: "u", value: "USER[:GROUP]", help: "Run as this user: a name or uid from the image's /etc/passwd"),
            OptionSpec("hostname", short: "h", value: "NAME", help: "Container hostname (default: the first 12 digits of its id)"),
            OptionSpec("name", value: "NAME", help: "Name the container"),
            OptionSpec("volume", short: "v", value: "SRC:DST[:ro]", help: "Bind a host path into the container", repeatable: true, files: true),
            OptionSpec("tmpfs", value: "DST[:OPTS]", help: "Mount a tmpfs (OPTS: size=64m,mode=1777,exec,...)", repeatable: true),
            OptionSpec("read-only", help: "Mount the container's root read-only"),
            OptionSpec("network", value: "MODE", help: "private (own namespace, loopback up; the default), none (the same), or host", choices: NetworkMode.allCases.map(\.rawValue)),
            OptionSpec("tty", short: "t", help: "Allocate a terminal in the container"),
            OptionSpec("interactive", short: "i", help: "Keep stdin open (always the case in the foreground)"),
            OptionSpec("rm", help: "Remove the container when it exits (the default for foreground runs)"),
            OptionSpec("init", help: "Run a minimal init as PID 1 that reaps zombies and forwards signals"),
            OptionSpec("explain", value: "FORMAT", help: "Narrate every kernel step as it happens (text, or json)", choices: ["text", "json"], implicitValue: "text"),
        ],
        arguments: [
            ArgumentSpec("IMAGE", help: "A rootfs tarball or directory", files: true),
            ArgumentSpec("COMMAND", help: "The command and its arguments (default: /bin/sh)", optional: true, variadic: true),
        ],
        optionsEndAtFirstArgument: true,
        examples: [
            "urun alpine.tar sh",
            "urun run --rm -v \"$PWD\":/src -w /src busybox.tar.gz ls -l",
            "urun --explain busybox.tar true",
        ])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let spec = try containerSpec(from: arguments)
        switch arguments.value("explain") {
        case nil: break
        case "text": Explain.start(.text)
        case "json": Explain.start(.json)
        case let other?: throw UrunError.usage("invalid value \"\(other)\" for --explain: text or json")
        }
        let paths = try UrunPaths.resolve(root: globals.root)
        return try Launcher(paths: paths).run(spec).code
    }

    /// Options → ContainerSpec, validating everything before anything is created.
    static func containerSpec(from arguments: ParsedArguments) throws -> ContainerSpec {
        var spec = ContainerSpec(image: arguments.positionals[0])
        spec.command = Array(arguments.positionals.dropFirst())
        for file in arguments.values("env-file") {
            guard let text = try? readText(file) else {
                throw UrunError.invalid("--env-file \(file): \(Errno.current.message)")
            }
            spec.environment += try ContainerEnvironment.parseFile(text, path: file)
        }
        spec.environment += ContainerEnvironment.fromFlags(arguments.values("env"))
        if let workdir = arguments.value("workdir") {
            guard workdir.hasPrefix("/") else { throw UrunError.usage("--workdir \(workdir): must be an absolute path") }
            spec.workingDirectory = workdir
        }
        spec.user = arguments.value("user")
        spec.hostname = arguments.value("hostname")
        spec.name = arguments.value("name")
        spec.volumes = try arguments.values("volume").map { spec throws in try Volume.parse(spec) }
        spec.tmpfs = try arguments.values("tmpfs").map { spec throws in try TmpfsMount.parse(spec) }
        spec.readOnly = arguments.flag("read-only")
        if let network = arguments.value("network") {
            guard let mode = NetworkMode(rawValue: network) else {
                throw UrunError.usage("--network \(network): expected private, none or host")
            }
            spec.network = mode
        }
        spec.useInit = arguments.flag("init")
        spec.tty = arguments.flag("tty")
        spec.interactive = arguments.flag("interactive")
        // `urun alpine.tar sh` at a terminal is an interactive shell, as docker's -it.
        if !arguments.has("tty") && !arguments.has("interactive") && isatty(0) == 1 && isatty(1) == 1 {
            spec.tty = true
            spec.interactive = true
        }
        return spec
    }
}
