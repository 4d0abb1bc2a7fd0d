import Glibc
import UrunCLI
import UrunContainer
import UrunImage
import UrunKernel
import UrunRegistry

/// A registry reference as docker reads it, or a usage error naming what is
/// wrong with it (`shown`: the text as the user wrote it).
func registryReference(_ text: String, shown: String? = nil, what: String = "an image reference") throws -> ImageReference {
    switch ImageReference.parse(text) {
    case .success(let reference): return reference
    case .failure(let error): throw UrunError.usage("\(printable(shown ?? text)): not \(what): \(error.reason)")
    }
}

/// A name as the cache records it: a registry reference in full
/// (`app` is `docker.io/library/app:latest`), as docker normalizes it.
func imageName(_ text: String) throws -> String {
    try registryReference(text, what: "an image name").description
}

func cachedImage(_ store: ImageStore, _ text: String) throws -> ImageRecord {
    if let record = store.find(text) { return record }
    if let full = try? imageName(text), let record = store.find(full) { return record }
    throw UrunError.invalid("No such image: \(printable(text))")
}

enum TagCommand: Command {
    static let spec = CommandSpec(
        name: "tag", abstract: "Give an image in the cache another name", options: [],
        arguments: [
            ArgumentSpec("IMAGE", help: "A name, an id or a unique prefix of one"),
            ArgumentSpec("TARGET", help: "The new name: [HOST[:PORT]/]NAME[:TAG] (the name urun push pushes to)"),
        ],
        examples: ["urun tag busybox.tar 127.0.0.1:5000/tools/busybox:1"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try imageStore(globals)
        let record = try cachedImage(store, arguments.positionals[0])
        try store.tag(record, as: try imageName(arguments.positionals[1]))
        return 0
    }
}

enum SaveCommand: Command {
    static let spec = CommandSpec(
        name: "save", abstract: "Write images from the cache to an archive",
        discussion: """
            docker-archive (the default) is what docker save writes: manifest.json, with the OCI image layout \
            beside it; oci-archive is the OCI layout alone. A pulled image is written with the registry's own \
            blobs, byte for byte; others get layers written from the cache (and so a new image id).
            """,
        options: [
            OptionSpec("output", short: "o", value: "FILE", help: "Write to FILE (default: stdout, when it is not a terminal)", files: true),
            OptionSpec("format", value: "FORMAT", help: "docker-archive or oci-archive", choices: SaveFormat.allCases.map(\.rawValue)),
        ],
        arguments: [ArgumentSpec("IMAGE", help: "Names or ids of images in the cache", variadic: true)],
        examples: ["urun save -o alpine.tar alpine", "urun save --format oci-archive app:1 | gzip > app.tar.gz"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let format = try arguments.value("format").map { text -> SaveFormat in
            guard let format = SaveFormat(rawValue: text) else { throw UrunError.usage("--format \(printable(text)): expected docker-archive or oci-archive") }
            return format
        } ?? .dockerArchive
        let store = try imageStore(globals)
        var images: [(record: ImageRecord, names: [String])] = []
        for text in arguments.positionals {
            let record = try cachedImage(store, text)
            // The name asked for, or every name of an image asked for by id.
            let asked = record.name(matching: text) ?? (try? imageName(text)).flatMap { record.names.contains($0) ? $0 : nil }
            let names = (asked.map { [$0] } ?? record.names).compactMap { try? imageName($0) }
            images.append((record, names))
        }
        try writeArchive(to: arguments.value("output")) { fd in try store.save(images, format: format, to: fd) }
        return 0
    }
}

/// `save` and `export`: the archive `write` produces, to `path` (written
/// beside it and renamed into place whole, so a failure leaves no half
/// archive), or to stdout when that is not a terminal.
func writeArchive(to path: String?, _ write: (CInt) throws -> Void) throws {
    guard let path else {
        guard isatty(1) == 0 else { throw UrunError.usage("refusing to write an archive to a terminal: use -o FILE or redirect stdout") }
        try write(1)
        return
    }
    let target = try UrunPaths.absolute(path)
    let partial = target + ".partial-" + randomHex(bytes: 4)
    let fd = try sys(.writeFile, path: partial) { open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
    do {
        defer { closeQuietly(fd) }
        try write(fd)
        try sys(.writeFile, path: target) { rename(partial, target) }
    } catch {
        unlink(partial)
        throw error
    }
}

enum LoadCommand: Command {
    static let spec = CommandSpec(
        name: "load", abstract: "Load the images of an archive into the cache",
        discussion: """
            Reads what urun save, docker save, podman save and skopeo write (docker-archive, oci-archive, \
            compressed or not). urun run reads such archives directly as well; load only unpacks them ahead.
            """,
        options: [
            OptionSpec("input", short: "i", value: "FILE", help: "The archive (default: stdin)", files: true),
            OptionSpec("quiet", short: "q", help: "Print only the names loaded"),
        ],
        examples: ["urun load -i alpine.tar", "urun save app | ssh host urun load"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try imageStore(globals)
        var path = arguments.value("input")
        var spooled: String?
        defer { if let spooled { unlink(spooled) } }
        if path == nil {
            guard isatty(0) == 0 else { throw UrunError.usage("no archive: give -i FILE or pipe one to stdin") }
            // The archive is read twice (names, then layers): stdin is spooled to the cache first.
            try store.prepareDirectories()
            let file = store.directory + "/tmp/load-" + randomHex(bytes: 6) + ".tar"
            let fd = try sys(.writeFile, path: file) { open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
            spooled = file
            defer { closeQuietly(fd) }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw UrunError.kernel(.readFile, path: "stdin", .current) }
                if n == 0 { break }
                try writeAll(fd, Array(buffer[0..<n]), path: file)
            }
            path = file
        }
        let archive = try UrunPaths.absolute(path!)
        let names = try store.names(in: archive)
        if names.isEmpty {
            let image = try store.image(for: archive, showProgress: !arguments.flag("quiet"))
            print("Loaded image: \(image.id ?? archive)")
        }
        for name in names {
            _ = try store.image(for: archive + ":" + name, showProgress: !arguments.flag("quiet"))
            print(arguments.flag("quiet") ? name : "Loaded image: \(name)")
        }
        return 0
    }
}

enum ImportCommand: Command {
    static let spec = CommandSpec(
        name: "import", abstract: "Make an image of a root filesystem tarball",
        discussion: "The tarball (plain, gzip, xz, zstd or bzip2) is the image's one layer; urun export writes such a tarball.",
        options: [OptionSpec("quiet", short: "q", help: "Print only the image's id")],
        arguments: [
            ArgumentSpec("TARBALL", help: "A root filesystem tarball", files: true),
            ArgumentSpec("IMAGE", help: "A name for the image: NAME[:TAG]", optional: true),
        ],
        examples: ["urun export web -o web.tar && urun import web.tar web:snapshot"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try imageStore(globals)
        let name = try arguments.positionals.dropFirst().first.map(imageName)
        let image = try store.image(for: arguments.positionals[0], showProgress: !arguments.flag("quiet"))
        guard let id = image.id, let record = store.find(id) else {
            throw UrunError.invalid("\(printable(arguments.positionals[0])) is a directory, not a tarball")
        }
        if let name { try store.tag(record, as: name) }
        print(id)
        return 0
    }
}
