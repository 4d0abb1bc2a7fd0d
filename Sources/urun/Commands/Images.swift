import Glibc
import UrunCLI
import UrunContainer
import UrunImage
import UrunKernel
import UrunUserNS

/// The image cache as docker users know it: images, rmi, image prune,
/// system prune, system df.
func imageStore(_ globals: Globals) throws -> ImageStore {
    ImageStore(
        directory: try globals.paths().cache, mapping: try? IDMap.subordinateForCaller(.auto))
}

/// Ids of the images kept containers use: `prune` leaves them alone.
func imagesInUse(_ containers: Containers) -> Set<String> {
    Set(containers.store.all().compactMap(\.imageID))
}

enum ImagesCommand: Command {
    static let spec = CommandSpec(
        name: "images", abstract: "List the images in the cache",
        options: [
            OptionSpec("quiet", short: "q", help: "Only print image ids"),
            OptionSpec("no-trunc", help: "Do not shorten ids"),
            OptionSpec("format", value: "TEMPLATE", help: "Go-style template: {{.Repository}} {{.Tag}} {{.ID}} {{.Size}} {{.LastUsed}} {{.Source}} {{.CreatedAt}}, {{json .}}; \"table ...\" adds a header; json: one object per line"),
            OptionSpec("filter", value: "KEY=VALUE", help: "Only matching images: reference (a glob on NAME or NAME:TAG), dangling (true: no name), label (KEY or KEY=VALUE), id (a prefix)", repeatable: true),
        ])

    static let fields = ["Repository", "Tag", "ID", "Size", "LastUsed", "Source", "CreatedAt"]
    static let headers = [
        "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Size": "SIZE", "LastUsed": "LAST USED", "Source": "SOURCE",
        "CreatedAt": "CREATED AT",
    ]

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try imageStore(globals)
        let full = arguments.flag("no-trunc")
        let filters = try ListingFilters(arguments.values("filter"), known: ["reference", "dangling", "label", "id"])
        var rows: [[String: String]] = []
        var seen = Set<String>()
        for record in store.records() {
            guard filters.allowsLabels(record.config?.labels ?? [:]),
                filters.allows("dangling", { ($0 == "true") == record.names.isEmpty }),
                filters.allows("id", { record.id.hasPrefix($0.replacingAll("sha256:", with: "")) })
            else { continue }
            let id = full ? "sha256:" + record.id : record.shortID
            let used = store.lastUsed(record).map { $0.humanDistance() + " ago" } ?? "never"
            let size = humanSize(store.size(record))
            let source = record.source.map(Self.shownSource) ?? ""
            for name in record.names.isEmpty ? [""] : record.names {
                let (repository, tag) = split(name)
                // As docker matches it: the full name or the familiar one ("alpine" for docker.io/library/alpine).
                let familiar = [name, repository].map { $0.replacingAll("docker.io/library/", with: "").replacingAll("docker.io/", with: "") }
                guard filters.allows("reference", { pattern in ([name, repository] + familiar).contains { ListingFilters.glob(pattern, $0) } }) else { continue }
                if arguments.flag("quiet") {
                    if seen.insert(record.id).inserted { print(id) }
                    continue
                }
                rows.append([
                    "Repository": repository, "Tag": tag, "ID": id, "Size": size, "LastUsed": used, "Source": source,
                    "CreatedAt": record.config?.created ?? "",
                ])
            }
        }
        if arguments.flag("quiet") { return 0 }
        let listing = Listing(fields: fields, headers: headers, rows: rows)
        print(listing.render(format: arguments.value("format"), default: "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}\t{{.LastUsed}}\t{{.Source}}"), terminator: "")
        return 0
    }

    /// Where an image came from, short: an archive's file name, a registry, a commit's container.
    static func shownSource(_ source: String) -> String {
        if source.hasPrefix(ImageStore.registrySource) {
            return String(source.dropFirst(ImageStore.registrySource.count).split(separator: "/").first ?? "")
        }
        if source.hasPrefix("commit:") { return "commit of " + source.dropFirst(7).prefix(12) }
        return baseName(of: source)
    }

    /// "docker.io/library/alpine:3.20" → ("docker.io/library/alpine", "3.20"); a file name has no tag.
    static func split(_ name: String) -> (String, String) {
        guard !name.isEmpty else { return ("<none>", "<none>") }
        if let colon = name.lastIndex(of: ":"), !name[colon...].contains("/") {
            return (String(name[..<colon]), String(name[name.index(after: colon)...]))
        }
        return (name, "<none>")
    }
}

enum RmiCommand: Command {
    static let spec = CommandSpec(
        name: "rmi", abstract: "Remove images from the cache",
        options: [OptionSpec("force", short: "f", help: "Untag an image that containers still use (it goes with them)")],
        arguments: [ArgumentSpec("IMAGE", help: "A name, an id or a unique prefix of one", variadic: true)])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try imageStore(globals)
        let containers = try containers(globals)
        var status: Int32 = 0
        for reference in arguments.positionals {
            do {
                guard let record = store.find(reference) else { throw UrunError.invalid("No such image: \(reference)") }
                // One of several names goes alone, as in docker.
                if record.names.count > 1, let name = record.name(matching: reference) {
                    var rest = record
                    rest.names.removeAll { $0 == name }
                    try store.update(rest)
                    print("Untagged: \(name)")
                    continue
                }
                let users = containers.store.all().filter { $0.imageID == record.id }
                if let user = users.first {
                    guard arguments.flag("force") else {
                        throw UrunError.invalid("unable to remove image \(reference): container \(user.name) uses it (urun rm it first, or rmi -f to untag the image)")
                    }
                    var nameless = record
                    nameless.names = []
                    try store.update(nameless)
                    for name in record.names { print("Untagged: \(name)") }
                    continue
                }
                try store.remove(record)
                for name in record.names { print("Untagged: \(name)") }
                print("Deleted: sha256:\(record.id)")
            } catch {
                writeQuietly(2, "urun: \(printableMessage(String(describing: error)))\n")
                status = 1
            }
        }
        return status
    }
}

/// `--force`, or a yes on the terminal: for the prune verbs, as docker asks.
func confirmed(_ arguments: ParsedArguments, _ warning: String) -> Bool {
    if arguments.flag("force") { return true }
    writeQuietly(1, "WARNING! This will remove:\n\(warning)\nAre you sure you want to continue? [y/N] ")
    let answer = readLine() ?? ""
    return answer.lowercased().hasPrefix("y")
}

/// The images prune removes (nameless ones, or with `all` every one no
/// container uses), each printed, then the space reclaimed.
func pruneImages(_ globals: Globals, all: Bool, containers: Containers, deleted: String) throws {
    let result = try imageStore(globals).prune(all: all, inUse: imagesInUse(containers))
    for id in result.removed { print("\(deleted): sha256:\(id)") }
    print("Total reclaimed space: \(humanSize(result.freed))")
}

/// `image prune` and `system prune` take the same flags and warn alike about images.
let pruneOptions = [
    OptionSpec("all", short: "a", help: "Remove every image no container uses, not only nameless ones"),
    OptionSpec("force", short: "f", help: "Do not ask for confirmation"),
]

func pruneWarning(all: Bool) -> String {
    all ? "  - all images without at least one container associated to them" : "  - all dangling (nameless) images"
}

enum ImagePruneCommand: Command {
    static let spec = CommandSpec(
        name: "image prune", abstract: "Remove unused images (nameless ones; -a: every one no container uses)",
        options: pruneOptions)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let all = arguments.flag("all")
        guard confirmed(arguments, pruneWarning(all: all)) else { return 0 }
        try pruneImages(globals, all: all, containers: try containers(globals), deleted: "Deleted")
        return 0
    }
}

enum SystemPruneCommand: Command {
    static let spec = CommandSpec(
        name: "system prune", abstract: "Remove stopped containers, unused images and leftovers",
        options: pruneOptions)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let all = arguments.flag("all")
        guard confirmed(arguments, "  - all stopped containers\n" + pruneWarning(all: all)) else { return 0 }
        let containers = try containers(globals)
        containers.collectGarbage()
        for record in containers.store.all() {
            let status = containers.store.state(record.id).status
            guard status == .exited || status == .created else { continue }
            do {
                try containers.remove(record, force: false)
                print("Deleted container: \(record.id)")
            } catch {
                writeQuietly(2, "urun: \(printableMessage(String(describing: error)))\n")
            }
        }
        try pruneImages(globals, all: all, containers: containers, deleted: "Deleted image")
        return 0
    }
}

enum SystemDfCommand: Command {
    static let spec = CommandSpec(name: "system df", abstract: "Show the disk space images and containers use", options: [])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try imageStore(globals)
        let containers = try containers(globals)
        let inUse = imagesInUse(containers)
        let records = store.records()
        var layers: [String: Bool] = [:]  // digest → used by an active image
        for record in records {
            let active = inUse.contains(record.id) || store.isLeased(record.id)
            for layer in record.layers { layers[layer] = (layers[layer] ?? false) || active }
        }
        let imageSize = layers.keys.reduce(0) { $0 + store.layerSize($1) }
        let reclaimable = layers.filter { !$0.value }.keys.reduce(0) { $0 + store.layerSize($1) }
        let activeImages = records.filter { inUse.contains($0.id) || store.isLeased($0.id) }.count

        var containerSize: UInt64 = 0
        var stoppedSize: UInt64 = 0
        var running = 0
        let kept = containers.store.all()
        for record in kept {
            let size = treeSize(containers.store.directory(record.id) + "/upper")
            containerSize += size
            let status = containers.store.state(record.id).status
            if status.isUp { running += 1 } else { stoppedSize += size }
        }
        func percent(_ part: UInt64, _ whole: UInt64) -> String { whole == 0 ? "" : " (\(part * 100 / whole)%)" }
        print(
            PsCommand.align([
                ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                ["Images", "\(records.count)", "\(activeImages)", humanSize(imageSize), humanSize(reclaimable) + percent(reclaimable, imageSize)],
                ["Containers", "\(kept.count)", "\(running)", humanSize(containerSize), humanSize(stoppedSize) + percent(stoppedSize, containerSize)],
            ]), terminator: "")
        return 0
    }
}

/// Bytes of file data below `path`, not following symlinks, at any depth;
/// what cannot be read is not counted.
func treeSize(_ path: String) -> UInt64 {
    guard let st = fileStatus(path) else { return 0 }
    guard isDirectory(st) else { return isRegularFile(st) ? UInt64(st.st_size) : 0 }
    let root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard root >= 0 else { return 0 }
    defer { closeQuietly(root) }
    var total: UInt64 = 0
    var walk = TreeWalk()
    walk.skipsUnreadable = true
    try? walk.run(root, display: path) { directory, entry in
        var st = stat()
        guard entry.withCName({ fstatat(directory, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else { return false }
        if isRegularFile(st) { total += UInt64(st.st_size) }
        return isDirectory(st)
    }
    return total
}

enum ImageInspectCommand: Command {
    static let spec = CommandSpec(
        name: "image inspect", abstract: "Show images of the cache as JSON, as docker image inspect",
        options: [OptionSpec("format", short: "f", value: "TEMPLATE", help: "Print only {{.Path.To.Field}} of each")],
        arguments: [ArgumentSpec("IMAGE", help: "A name, an id or a unique prefix of one", variadic: true)])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let store = try imageStore(globals)
        var results: [JSON] = []
        for text in arguments.positionals {
            let record = try cachedImage(store, text)
            let config = record.config ?? ImageConfig()
            let configJSON = config.json["config"] ?? .object([])
            var object = JSON.object([
                ("Id", .string("sha256:" + record.id)), ("RepoTags", .array(record.names.map(JSON.string))),
                ("RepoDigests", .array(record.digest.map { digest in
                    record.names.compactMap { name in
                        name.lastIndex(of: ":").map { colon in JSON.string(String(name[..<colon]) + "@" + digest) }
                    }
                } ?? [])),
                ("Created", .string(config.created ?? record.loaded.rfc3339)), ("Os", .string(config.os ?? "linux")),
                ("Architecture", .string(config.architecture ?? "")), ("Config", configJSON),
                ("RootFS", .object([("Type", .string("layers")), ("Layers", .array(record.layers.map { .string("sha256:" + $0) }))])),
                ("Size", .int(store.size(record))),
            ])
            if let variant = config.variant { object["Variant"] = .string(variant) }
            if let source = record.source { object["Source"] = .string(source) }
            results.append(object)
        }
        if let format = arguments.value("format") {
            for result in results { print(InspectCommand.fill(format, result)) }
        } else {
            print(JSON.array(results).pretty())
        }
        return 0
    }
}
