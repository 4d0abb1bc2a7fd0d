import Glibc
import UrunCLI
import UrunCgroups
import UrunContainer
import UrunKernel

/// `urun run`: create and run a container.
enum RunCommand: Command {
    static let spec = CommandSpec(
        name: "run",
        abstract: "Run a command in a new container",
        discussion: """
            IMAGE is a rootfs tarball (plain, gzip, xz, zstd or bzip2, recognised by content) or a directory. \
            A tarball is unpacked once into the cache; every container of it shares that copy as the read-only \
            lower layer of an overlay and writes to its own upper layer.
            A foreground run is removed when it exits, unless it is named (--name) or run with --rm=false: then \
            it is kept, as docker keeps it, for urun ps -a, logs, start and rm. With -d the container runs on its \
            own, supervised by a monitor process of its own, and urun prints its id.
            Without COMMAND the container runs /bin/sh. When stdin and stdout are terminals, -i and -t are implied. \
            An unnamed foreground run passes stdin through, so `echo hi | urun IMAGE cat` works; a kept one (--name, \
            --rm=false) reads stdin only with -i, as docker. Either way the container takes only what it reads.
            """,
        options: [
            OptionSpec("detach", short: "d", help: "Run in the background and print the container's id"),
            OptionSpec("rm", help: "Remove the container when it exits (the default for an unnamed foreground run)"),
            OptionSpec("print-config", help: "Print the runtime-spec config.json this run compiles to (what it would execute) and exit without running it"),
        ] + ContainerOptions.options,
        arguments: ContainerOptions.arguments,
        optionsEndAtFirstArgument: true,
        examples: [
            "urun alpine.tar sh",
            "urun run --rm -v \"$PWD\":/src -w /src busybox.tar.gz ls -l",
            "urun run -d --name web busybox.tar httpd -f -p 8080",
            "urun --explain busybox.tar true",
            "urun run --print-config busybox.tar sh -c 'echo hi'",
        ])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        var spec = try ContainerOptions.containerSpec(from: arguments)
        try ContainerOptions.startExplaining(arguments)
        let detach = arguments.flag("detach")
        let name = arguments.value("name")
        // Kept unless --rm, or an unnamed foreground run without --rm=false
        // (Docs/design.md says why); one with --restart is kept, as docker keeps it.
        let autoRemove = arguments.has("rm") ? arguments.flag("rm") : !(detach || name != nil || spec.restart != .no)
        let cidfile = try ContainerOptions.cidfile(arguments)
        if !detach && !arguments.has("tty") && isatty(0) == 1 && isatty(1) == 1 {
            // `urun alpine.tar sh` at a terminal is an interactive shell.
            spec.tty = true
            spec.interactive = true
        }
        if !spec.limits.isEmpty, case .failure = ContainerCgroup.delegated() {
            try SystemdScope.reexecIfReachable()
        }
        let paths = try globals.paths()
        try VolumeStore(paths: paths).resolve(&spec)
        try ContainerOptions.volumesFrom(arguments, in: ContainerStore(paths: paths), into: &spec)
        if arguments.flag("print-config") {
            print(try Launcher(paths: paths).plan(for: spec).config().pretty())
            return 0
        }
        if !detach && autoRemove && name == nil && cidfile == nil {
            // Like running a command: stdin is the container's own, which reads only what it reads.
            spec.interactive = true
            return try Launcher(paths: paths).run(spec).code
        }

        let containers = Containers(paths: paths, globalArguments: globals.arguments)
        containers.collectGarbage()
        try ContainerOptions.replaceNamed(arguments, in: containers)
        let record = try containers.create(spec, name: name, autoRemove: autoRemove)
        try ContainerOptions.writeCidfile(cidfile, record, containers)
        if detach {
            do {
                _ = try containers.start(record)
            } catch {
                if autoRemove { try? containers.store.remove(record.id) }
                throw error
            }
            print(record.id)
            return 0
        }
        return try StartCommand.attached(record, containers, sendInput: spec.interactive)
    }
}

/// `urun create`: a container, ready to start.
enum CreateCommand: Command {
    static let spec = CommandSpec(
        name: "create",
        abstract: "Create a container without starting it; prints its id",
        discussion: "The options are those of urun run. The container is kept until urun rm, or with --rm until it exits.",
        options: [OptionSpec("rm", help: "Remove the container when it exits")] + ContainerOptions.options,
        arguments: ContainerOptions.arguments,
        optionsEndAtFirstArgument: true,
        examples: ["urun create --name box -it alpine.tar sh", "urun start -ai box"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        var spec = try ContainerOptions.containerSpec(from: arguments)
        let containers = Containers(paths: try globals.paths(), globalArguments: globals.arguments)
        try VolumeStore(paths: containers.store.paths).resolve(&spec)
        try ContainerOptions.volumesFrom(arguments, in: containers.store, into: &spec)
        let cidfile = try ContainerOptions.cidfile(arguments)
        try ContainerOptions.replaceNamed(arguments, in: containers)
        let record = try containers.create(spec, name: arguments.value("name"), autoRemove: arguments.flag("rm"))
        try ContainerOptions.writeCidfile(cidfile, record, containers)
        print(record.id)
        return 0
    }
}
