import Glibc
import UrunCLI
import UrunContainer
import UrunKernel

func volumeStore(_ globals: Globals) throws -> VolumeStore { VolumeStore(paths: try globals.paths()) }

enum VolumeCreateCommand: Command {
    static let spec = CommandSpec(
        name: "volume create", abstract: "Make a named volume (also made by the first -v NAME:/dst)", options: [],
        arguments: [ArgumentSpec("NAME", help: "Letters, digits, _ . - (default: a random name)", optional: true)],
        examples: ["urun volume create ccache && urun run -v ccache:/root/.ccache builder.tar make"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let name = arguments.positionals.first ?? randomHex(bytes: 16)
        try volumeStore(globals).create(name)
        print(name)
        return 0
    }
}

enum VolumeListCommand: Command {
    static let spec = CommandSpec(
        name: "volume ls", abstract: "List the named volumes",
        options: [OptionSpec("quiet", short: "q", help: "Only print names")])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try volumeStore(globals)
        if arguments.flag("quiet") {
            store.names().forEach { print($0) }
            return 0
        }
        print(PsCommand.align([["DRIVER", "VOLUME NAME"]] + store.names().map { ["local", $0] }), terminator: "")
        return 0
    }
}

enum VolumeInspectCommand: Command {
    static let spec = CommandSpec(
        name: "volume inspect", abstract: "Show named volumes as JSON", options: [],
        arguments: [ArgumentSpec("NAME", help: "Volume names", variadic: true)])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try volumeStore(globals)
        var entries: [JSON] = []
        for name in arguments.positionals {
            guard store.exists(name) else { throw UrunError.invalid("no such volume: \(printable(name))") }
            entries.append(.object([
                ("Name", .string(name)), ("Driver", .string("local")), ("Mountpoint", .string(store.path(name))),
                ("CreatedAt", .string(store.created(name)?.rfc3339 ?? "")), ("Scope", .string("local")),
            ]))
        }
        print(JSON.array(entries).pretty())
        return 0
    }
}

enum VolumeRemoveCommand: Command {
    static let spec = CommandSpec(
        name: "volume rm", abstract: "Remove named volumes no container uses",
        options: [OptionSpec("force", short: "f", help: "Do not fail on a volume that does not exist")],
        arguments: [ArgumentSpec("NAME", help: "Volume names", variadic: true)])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try volumeStore(globals)
        let used = store.inUse(by: try containers(globals).store.all())
        var status: Int32 = 0
        for name in arguments.positionals {
            do {
                if !store.exists(name) && arguments.flag("force") { continue }
                guard !used.contains(name) else { throw UrunError.invalid("volume \(printable(name)) is in use by a container (urun rm it first)") }
                try store.remove(name)
                print(name)
            } catch let error as UrunError {
                writeQuietly(2, "urun: \(printableMessage(error.description))\n")
                status = 1
            }
        }
        return status
    }
}

enum VolumePruneCommand: Command {
    static let spec = CommandSpec(
        name: "volume prune", abstract: "Remove every named volume no container uses",
        options: [OptionSpec("force", short: "f", help: "Do not ask")])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        guard confirmed(arguments, "  - all volumes not used by at least one container\n") else { return 0 }
        let store = try volumeStore(globals)
        let used = store.inUse(by: try containers(globals).store.all())
        print("Deleted Volumes:")
        for name in store.names() where !used.contains(name) {
            try store.remove(name)
            print(name)
        }
        return 0
    }
}
