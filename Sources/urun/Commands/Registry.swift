import Glibc
import UrunCLI
import UrunContainer
import UrunImage
import UrunKernel
import UrunRegistry

/// The options every command that talks to a registry takes.
enum RegistryFlags {
    static let options: [OptionSpec] = [
        OptionSpec("tls-verify", value: "BOOL", help: "Verify the registry's certificate (default true); false also allows plain HTTP. Loopback registries may use plain HTTP unless this is true", choices: ["true", "false"], implicitValue: "true"),
        OptionSpec("cert-dir", value: "DIR", help: "Trust the CA certificates (*.crt) in DIR, and use its client certificate (*.cert, *.key)", files: true),
        OptionSpec("authfile", value: "FILE", help: "Credentials file (default: $XDG_RUNTIME_DIR/containers/auth.json, also REGISTRY_AUTH_FILE)", files: true),
    ]

    static func parse(_ arguments: ParsedArguments) throws -> RegistryOptions {
        var options = RegistryOptions()
        if let verify = arguments.value("tls-verify") {
            guard verify == "true" || verify == "false" else { throw UrunError.usage("--tls-verify \(printable(verify)): expected true or false") }
            options.tlsVerify = verify == "true"
        }
        options.certDirectory = try arguments.value("cert-dir").map { (path) throws(UrunError) in try UrunPaths.absolute(path) }
        options.authFile = try arguments.value("authfile").map { (path) throws(UrunError) in try UrunPaths.absolute(path) }
        return options
    }
}

enum PullCommand: Command {
    static let spec = CommandSpec(
        name: "pull", abstract: "Pull an image from a registry into the cache",
        discussion: """
            IMAGE is a reference as docker reads it: alpine is docker.io/library/alpine:latest; \
            HOST[:PORT]/NAME[:TAG] or NAME@sha256:DIGEST name others. Layers already in the cache are not fetched \
            again; every blob is checked against its digest before it is used. Prints the image's id. \
            urun run pulls an image it does not have (--pull), unless a file or directory of that name exists: \
            an existing path always wins (write docker://NAME to mean the registry).
            """,
        options: [
            OptionSpec("platform", value: "OS/ARCH", help: "Which image of a multi-platform index (default: this machine's)"),
            OptionSpec("quiet", short: "q", help: "No progress display"),
        ] + RegistryFlags.options,
        arguments: [ArgumentSpec("IMAGE", help: "A registry reference: NAME[:TAG], NAME@sha256:DIGEST")],
        examples: ["urun pull alpine", "urun pull --platform linux/arm64 alpine:3.20", "urun pull --tls-verify=false 127.0.0.1:5000/app:v1"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let text = arguments.positionals[0]
        let bare = text.hasPrefix(ImageStore.registrySource) ? String(text.dropFirst(ImageStore.registrySource.count)) : text
        let reference = try registryReference(bare, shown: text)
        let platform = try arguments.value("platform").map { (text) throws(UrunError) in try Platform.validated(text) }
        let puller = RegistryTransfer(store: try imageStore(globals), options: try RegistryFlags.parse(arguments))
        let image = try puller.pull(reference, platform: platform, showProgress: !arguments.flag("quiet"))
        print(image.id ?? "")
        return 0
    }
}

enum LoginCommand: Command {
    static let spec = CommandSpec(
        name: "login", abstract: "Log in to a registry",
        discussion: """
            The credentials are checked with the registry, then stored where podman and skopeo read them \
            ($XDG_RUNTIME_DIR/containers/auth.json, mode 0600; ~/.config/containers/auth.json without a runtime \
            directory). Pulls also read ~/.docker/config.json, with its credential helpers. The password is \
            prompted for without echo, or read from stdin with --password-stdin; it is never printed.
            """,
        options: [
            OptionSpec("username", short: "u", value: "USER", help: "User name (prompted for when missing)"),
            OptionSpec("password", short: "p", value: "PASSWORD", help: "Password (visible to other users in ps: prefer --password-stdin)"),
            OptionSpec("password-stdin", help: "Read the password from stdin"),
        ] + RegistryFlags.options,
        arguments: [ArgumentSpec("REGISTRY", help: "HOST[:PORT] (default docker.io)", optional: true)],
        examples: ["urun login -u me quay.io", "echo \"$TOKEN\" | urun login -u me --password-stdin 127.0.0.1:5000"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let registry = normalized(arguments.positionals.first ?? "docker.io")
        var username = arguments.value("username")
        if username == nil {
            guard isatty(0) == 1 else { throw UrunError.usage("no terminal to ask for a user name: give -u USER") }
            username = try prompt("Username: ", echo: true)
        }
        let password: String
        if arguments.flag("password-stdin") {
            var text = String(decoding: try readAll(0, path: "stdin", limit: 1 << 16), as: UTF8.self)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            password = text
        } else if let given = arguments.value("password") {
            writeQuietly(2, "urun: a password on the command line is visible to other users: use --password-stdin\n")
            password = given
        } else {
            guard isatty(0) == 1 else { throw UrunError.usage("no terminal to ask for the password: use --password-stdin") }
            password = try prompt("Password: ", echo: false)
        }
        guard let username, !username.isEmpty, !password.isEmpty else { throw UrunError.usage("a user name and a password are needed") }
        try RegistryTransfer.login(
            registry: registry, credentials: RegistryCredentials(username: username, password: password),
            options: try RegistryFlags.parse(arguments))
        print("Login Succeeded!")
        return 0
    }

    /// What docker accepts for a registry: a scheme and a trailing path are dropped.
    static func normalized(_ text: String) -> String {
        var registry = Substring(text)
        for scheme in ["https://", "http://"] where registry.hasPrefix(scheme) { registry = registry.dropFirst(scheme.count) }
        if let slash = registry.firstIndex(of: "/") { registry = registry[..<slash] }
        return registry == "index.docker.io" || registry == "registry-1.docker.io" ? "docker.io" : String(registry)
    }

    /// A line from the terminal; without echo for a password.
    static func prompt(_ question: String, echo: Bool) throws -> String {
        writeQuietly(2, question)
        var saved = termios()
        let quiet = !echo && tcgetattr(0, &saved) == 0
        if quiet {
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(0, TCSAFLUSH, &silent)
        }
        defer {
            if quiet {
                tcsetattr(0, TCSAFLUSH, &saved)
                writeQuietly(2, "\n")
            }
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(0, &byte, 1) == 1 && byte != 0x0A && line.count < 4096 { line.append(byte) }
        if line.last == 0x0D { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }
}

enum LogoutCommand: Command {
    static let spec = CommandSpec(
        name: "logout", abstract: "Remove a registry's stored credentials",
        options: [
            OptionSpec("all", short: "a", help: "Remove the credentials of every registry (the whole auth file)"),
            OptionSpec("authfile", value: "FILE", help: "Credentials file (default: $XDG_RUNTIME_DIR/containers/auth.json, also REGISTRY_AUTH_FILE)", files: true),
        ],
        arguments: [ArgumentSpec("REGISTRY", help: "HOST[:PORT] (default docker.io)", optional: true)])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let files = AuthFiles(explicit: try arguments.value("authfile").map { (path) throws(UrunError) in try UrunPaths.absolute(path) })
        if arguments.flag("all") {
            _ = try files.removeAll()
            print("Removed login credentials for all registries")
            return 0
        }
        let registry = LoginCommand.normalized(arguments.positionals.first ?? "docker.io")
        guard try files.remove(for: registry) else {
            throw UrunError.invalid("not logged into \(printable(registry)) (in \(files.writePath))")
        }
        print("Removed login credentials for \(registry)")
        return 0
    }
}

enum PushCommand: Command {
    static let spec = CommandSpec(
        name: "push", abstract: "Push an image from the cache to a registry",
        discussion: """
            DESTINATION defaults to IMAGE's own name (see urun tag). Blobs the registry has are not sent again; \
            an image pulled from the same registry has its blobs mounted there rather than uploaded. A pulled \
            image goes with its own blobs, byte for byte, so its digest stays; others get layers written from \
            the cache. The manifest goes last.
            """,
        options: RegistryFlags.options,
        arguments: [
            ArgumentSpec("IMAGE", help: "A name or id of an image in the cache"),
            ArgumentSpec("DESTINATION", help: "[HOST[:PORT]/]NAME[:TAG]", optional: true),
        ],
        examples: ["urun tag app:1 127.0.0.1:5000/team/app:1 && urun push 127.0.0.1:5000/team/app:1"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try imageStore(globals)
        let text = arguments.positionals[0]
        let record = try cachedImage(store, text)
        let destination = arguments.positionals.count > 1 ? arguments.positionals[1] : (record.name(matching: text) ?? text)
        let reference = try registryReference(destination, what: "a registry reference")
        try RegistryTransfer(store: store, options: try RegistryFlags.parse(arguments)).push(record, to: reference)
        return 0
    }
}
