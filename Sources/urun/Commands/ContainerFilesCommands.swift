import Glibc
import UrunCLI
import UrunContainer
import UrunImage
import UrunKernel

enum CommitCommand: Command {
    static let spec = CommandSpec(
        name: "commit", abstract: "Make an image of a container's changes",
        discussion: """
            The container's writes become one more layer on its image (deletions as OCI whiteouts, owners as \
            the container sees them); the image goes into the cache under IMAGE, or by id alone. The container \
            may be stopped, paused or running (paused while its layer is written, unless --pause=false). \
            --change takes CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, STOPSIGNAL and HEALTHCHECK, as a Dockerfile writes them.
            """,
        options: [
            OptionSpec("change", short: "c", value: "INSTRUCTION", help: "Change the configuration: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, STOPSIGNAL, HEALTHCHECK", repeatable: true),
            OptionSpec("message", short: "m", value: "TEXT", help: "A comment in the image's history"),
            OptionSpec("author", short: "a", value: "NAME", help: "The author in the image's history"),
            OptionSpec("pause", short: "p", value: "BOOL", help: "Pause a running container while its layer is written (default true)", choices: ["true", "false"], implicitValue: "true"),
            OptionSpec("quiet", short: "q", help: "Print only the image's id"),
        ],
        arguments: [
            ArgumentSpec("CONTAINER", help: "A name, an id or a unique prefix of one"),
            ArgumentSpec("IMAGE", help: "A name for the image: [HOST[:PORT]/]NAME[:TAG]", optional: true),
        ],
        examples: ["urun commit -c 'CMD [\"/app\"]' -m 'built' builder app:1"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let record = try containers.store.resolve(arguments.positionals[0])
        let name = try arguments.positionals.dropFirst().first.map(imageName)
        let image = try ContainerFiles(containers, record).commit(
            name: name, changes: arguments.values("change"), message: arguments.value("message"),
            author: arguments.value("author"), pause: arguments.value("pause") != "false")
        print((arguments.flag("quiet") ? "" : "sha256:") + (image.id ?? ""))
        return 0
    }
}

enum ExportCommand: Command {
    static let spec = CommandSpec(
        name: "export", abstract: "Write a container's file system as a tar",
        discussion: "The flattened root file system (its image's layers and its writes); mounts such as volumes, /proc and /dev are not in it. urun import makes an image of it again.",
        options: [OptionSpec("output", short: "o", value: "FILE", help: "Write to FILE (default: stdout, when it is not a terminal)", files: true)],
        arguments: [ArgumentSpec("CONTAINER", help: "A name, an id or a unique prefix of one")],
        examples: ["urun export web -o web.tar", "urun export web | tar -t"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let files = ContainerFiles(containers, try containers.store.resolve(arguments.positionals[0]))
        try writeArchive(to: arguments.value("output")) { fd in try files.export(to: fd) }
        return 0
    }
}

enum CopyCommand: Command {
    static let spec = CommandSpec(
        name: "cp", abstract: "Copy files between a container and the host",
        discussion: """
            One side is CONTAINER:PATH (an absolute path in the container), the other a host path. As docker: \
            into DESTINATION when it is a directory, else as DESTINATION. The container may be running or \
            stopped. Paths inside are resolved in the container's root, so a symlink there never leads out of \
            it. Files copied out are yours; files copied in belong to the container's root.
            """,
        options: [],
        arguments: [
            ArgumentSpec("SOURCE", help: "CONTAINER:PATH or a host path", files: true),
            ArgumentSpec("DESTINATION", help: "A host path or CONTAINER:PATH", files: true),
        ],
        examples: ["urun cp web:/etc/nginx/nginx.conf .", "urun cp ./site web:/usr/share/nginx/html"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let (source, destination) = (arguments.positionals[0], arguments.positionals[1])
        switch (containerPath(source), containerPath(destination)) {
        case (.some(let (name, path)), nil):
            try ContainerFiles(containers, try containers.store.resolve(name)).copyOut(path, to: destination)
        case (nil, .some(let (name, path))):
            try ContainerFiles(containers, try containers.store.resolve(name)).copyIn(source, to: path)
        case (.some, .some):
            throw UrunError.usage("copying between two containers is not supported: copy out to the host, then in")
        case (nil, nil):
            throw UrunError.usage("one side must be CONTAINER:PATH")
        }
        return 0
    }

    /// "name:/path" → (name, /path); a host path (one that exists, or has a slash before any colon) → nil.
    static func containerPath(_ text: String) -> (String, String)? {
        guard let colon = text.firstIndex(of: ":"), colon != text.startIndex, !text[..<colon].contains("/"),
            fileStatus(text) == nil
        else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }
}
