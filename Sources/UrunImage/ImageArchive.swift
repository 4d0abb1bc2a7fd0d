import CUrunArchive
import Glibc
import UrunKernel

/// The metadata of an image, read from where its members are: an archive —
/// `docker save`/`podman save` (manifest.json), an OCI image layout
/// (oci-layout, index.json, blobs/sha256/…) — read in one pass that keeps the
/// small members (manifests, configs) and skips the layers; or a layout
/// directory (an OCI layout, or containers/image's "dir:" layout whose
/// manifest.json is one manifest and whose blobs are named by their hex digest).
struct ImageArchive {
    /// One layer of the chosen image: where it is in the archive and what it must hash to.
    struct Layer: Equatable {
        /// The archive member holding the layer (a tar, maybe compressed).
        let member: String
        /// sha256 of the member's bytes, when the manifest gives it (OCI).
        let blobDigest: String?
        /// sha256 of the uncompressed tar, from the image configuration.
        let diffID: String
    }

    /// The image to run, resolved and verified.
    struct Selected {
        /// The configuration's digest: the image id.
        let id: String
        let names: [String]
        let config: ImageConfig
        /// Bottom first.
        let layers: [Layer]
    }

    /// A manifest found in the archive, before one is chosen.
    struct Candidate {
        var names: [String]
        var platform: String?
        let configMember: String
        let configDigest: String?
        let layers: [(member: String, digest: String?)]
    }

    enum Format: String {
        /// docker save's own: manifest.json lists images.
        case docker
        /// An OCI image layout: index.json and oci-layout.
        case oci
        /// containers/image's "dir:" layout (podman save --format docker-dir):
        /// manifest.json is a single distribution manifest, blobs are named by hex.
        case dockerDir = "docker-dir"
    }

    let source: String
    /// Small members by name ("./" stripped), read into memory (an archive).
    private(set) var files: [String: [UInt8]] = [:]
    /// Symbolic and hard links between members (docker save links repeated layers).
    private(set) var links: [String: String] = [:]
    private(set) var members: Set<String> = []
    /// A layout directory read in place, or nil for an archive.
    let directory: LayoutDirectory?
    /// What kind of image archive this is; nil when it is none (a root
    /// filesystem that happened to start like one).
    private(set) var format: Format?

    static let smallMember = 4 << 20
    static let metadataLimit = 64 << 20
    /// At most this many descriptors in all of an OCI layout's indexes, nested at most `maxNesting` deep.
    static let maxDescriptors = 4096
    static let maxNesting = 8

    /// Whether an archive whose first member (after its root, "./") is
    /// `name` may be an image archive rather than a root filesystem: the
    /// names only image archives start with. The whole archive decides.
    static func mayBeImageArchive(firstMember name: String) -> Bool {
        let top = normalize(name).split(separator: "/").first.map(String.init) ?? ""
        if ["blobs", "oci-layout", "index.json", "manifest.json", "repositories", "version"].contains(top) { return true }
        // docker save's older layout: <64 hex>/ directories and <64 hex>.json configs;
        // podman's and skopeo's: the layers first, as <64 hex>.tar.
        for suffix in [".json", ".tar"] where top.hasSuffix(suffix) {
            return Digest.isHex(String(top.dropLast(suffix.count)))
        }
        return Digest.isHex(top)
    }

    /// Whether a member name is the archive's root ("./", ".", "/").
    static func isRoot(_ name: String) -> Bool { normalize(name).isEmpty || normalize(name) == "." }

    static func normalize(_ name: String) -> String {
        var name = Substring(name)
        while name.hasPrefix("./") { name = name.dropFirst(2) }
        while name.hasPrefix("/") { name = name.dropFirst() }
        while name.hasSuffix("/") { name = name.dropLast() }
        return String(name)
    }

    /// Reads the metadata of an archive, starting with `first`, the entry already read.
    init(source: String, reader: TarReader, first: OpaquePointer) throws(UrunError) {
        self.source = source
        directory = nil
        var entry: OpaquePointer? = first
        var kept = 0
        while let current = entry {
            let name = Self.normalize(archive_entry_pathname(current).map { String(cString: $0) } ?? "")
            members.insert(name)
            if let target = archive_entry_hardlink(current) {
                links[name] = Self.normalize(String(cString: target))
            } else if archive_entry_filetype(current) == S_IFLNK, let target = archive_entry_symlink(current) {
                links[name] = Self.resolve(String(cString: target), from: name)
            } else if archive_entry_filetype(current) == S_IFREG, archive_entry_size(current) <= Self.smallMember {
                let data = try reader.readAllData(limit: Self.smallMember)
                kept += data.count
                guard kept <= Self.metadataLimit else {
                    throw .invalid("\(source): more than \(Self.metadataLimit >> 20) MiB of small files: not an image archive urun can read")
                }
                files[name] = data
            }
            entry = try reader.next()
        }
        format = detectFormat()
    }

    /// Reads the metadata of a layout directory, in place.
    init(source: String, directory: LayoutDirectory) {
        self.source = source
        self.directory = directory
        format = detectFormat()
    }

    /// A link target relative to the link's own directory.
    static func resolve(_ target: String, from name: String) -> String {
        if target.hasPrefix("/") { return normalize(target) }
        var parts = name.split(separator: "/").dropLast().map(String.init)
        for part in target.split(separator: "/") {
            if part == ".." { _ = parts.popLast() } else if part != "." { parts.append(String(part)) }
        }
        return parts.joined(separator: "/")
    }

    /// The member that holds the data of `name`, following links.
    func dataMember(_ name: String) -> String {
        var name = Self.normalize(name)
        var hops = 0
        while let next = links[name], hops < 16 {
            name = next
            hops += 1
        }
        return name
    }

    func contains(_ member: String) -> Bool {
        if let directory { return directory.hasFile(member) }
        return members.contains(member)
    }

    private func file(_ name: String, field: String) throws(UrunError) -> [UInt8] {
        if let directory {
            guard let data = try directory.read(name, limit: Self.smallMember) else {
                throw .invalid("\(source): \(field) \(printable(name)) is not in the directory")
            }
            return data
        }
        let member = dataMember(name)
        if let data = files[member] { return data }
        if members.contains(member) { throw .invalid("\(source): \(field) \(printable(name)) is too large for metadata") }
        throw .invalid("\(source): \(field) \(printable(name)) is not in the archive")
    }

    private func json(_ name: String, field: String) throws(UrunError) -> JSON {
        let data = try file(name, field: field)
        do {
            return try JSON(parsing: data)
        } catch {
            throw .invalid("\(source): \(printable(name)): not valid JSON: \(error)")
        }
    }

    /// A blob, checked against its digest.
    private func blob(_ digest: String, field: String) throws(UrunError) -> (name: String, data: [UInt8]) {
        let hex = try Digest.hex(digest, source: source, field: field)
        let name = blobMember(hex)
        let data = try file(name, field: field)
        let actual = SHA256.digest(of: data)
        guard actual == hex else { throw .invalid("\(source): \(name): sha256 is \(actual), not the \(hex) its name promises") }
        return (name, data)
    }

    /// Where the blob with this hex digest lives.
    private func blobMember(_ hex: String) -> String { format == .dockerDir ? hex : "blobs/sha256/" + hex }

    // MARK: the manifests

    private func detectFormat() -> Format? {
        if contains("index.json") && contains("oci-layout") { return .oci }
        guard contains("manifest.json") else { return nil }
        // docker save lists images; a "dir:" layout holds one manifest object.
        let first = (try? file("manifest.json", field: "manifest"))?.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        return first == UInt8(ascii: "{") ? .dockerDir : .docker
    }

    func candidates() throws(UrunError) -> [Candidate] {
        switch format {
        case .oci: return try ociCandidates()
        case .docker: return try dockerCandidates()
        case .dockerDir:
            return [try candidate(try json("manifest.json", field: "manifest"), field: "manifest.json", names: [], platform: nil)]
        case nil: throw .invalid("\(source): an image archive without manifest.json or index.json")
        }
    }

    private func dockerCandidates() throws(UrunError) -> [Candidate] {
        guard let entries = try json("manifest.json", field: "manifest").array else {
            throw .invalid("\(source): manifest.json: expected a list of images")
        }
        var result: [Candidate] = []
        for (i, entry) in entries.enumerated() {
            let field = "manifest.json[\(i)]"
            guard let config = entry["Config"]?.string else { throw .invalid("\(source): \(field).Config: missing") }
            guard let layers = entry["Layers"]?.strings else { throw .invalid("\(source): \(field).Layers: missing") }
            // The config's name is its digest: <hex>.json, or blobs/sha256/<hex>.
            let stem = baseName(of: config).hasSuffix(".json") ? String(baseName(of: config).dropLast(5)) : baseName(of: config)
            result.append(
                Candidate(
                    names: entry["RepoTags"]?.strings ?? [], platform: nil, configMember: config,
                    configDigest: Digest.isHex(stem) ? stem : nil,
                    layers: layers.map { ($0, $0.hasPrefix("blobs/sha256/") ? baseName(of: $0) : nil) }))
        }
        return result
    }

    static let indexTypes = [
        "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
    static let manifestTypes = [
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
    ]
    static let layerTypes = [
        "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.image.rootfs.diff.tar.zstd",
    ]

    /// Indexes may nest and name the same manifest or index many times (a
    /// hostile one, 50 entries deep 8 times, names 50^8 paths): each digest
    /// is read once, a repeated manifest only adds its names, and the number
    /// of descriptors and the depth are bounded.
    private struct Collection {
        var candidates: [Candidate] = []
        /// Manifest digest → its candidate's index.
        var manifests: [String: Int] = [:]
        var indexes: Set<String> = []
        var descriptors = 0
    }

    private func ociCandidates() throws(UrunError) -> [Candidate] {
        var collection = Collection()
        try collect(index: try json("index.json", field: "index"), field: "index.json", depth: 0, names: [], into: &collection)
        return collection.candidates
    }

    private func collect(index: JSON, field: String, depth: Int, names: [String], into collection: inout Collection)
        throws(UrunError)
    {
        guard depth < Self.maxNesting else {
            throw .invalid("\(source): \(field): indexes nested more than \(Self.maxNesting) deep")
        }
        guard let descriptors = index["manifests"]?.array else { throw .invalid("\(source): \(field).manifests: missing") }
        for (i, descriptor) in descriptors.enumerated() {
            collection.descriptors += 1
            guard collection.descriptors <= Self.maxDescriptors else {
                throw .invalid("\(source): more than \(Self.maxDescriptors) manifest descriptors in its indexes: not an image archive urun reads")
            }
            let here = "\(field).manifests[\(i)]"
            guard let digest = descriptor["digest"]?.string else { throw .invalid("\(source): \(here).digest: missing") }
            // containerd's annotation has the full name; the OCI one may be only a tag.
            var ownNames = names
            let annotations = descriptor["annotations"]
            if let name = annotations?["io.containerd.image.name"]?.string ?? annotations?["org.opencontainers.image.ref.name"]?.string,
                !ownNames.contains(name)
            {
                ownNames.append(name)
            }
            if let seen = collection.manifests[digest] {
                for name in ownNames where !collection.candidates[seen].names.contains(name) {
                    collection.candidates[seen].names.append(name)
                }
                continue
            }
            if collection.indexes.contains(digest) { continue }
            let platform = descriptor["platform"].flatMap { p -> String? in
                guard let os = p["os"]?.string, let arch = p["architecture"]?.string else { return nil }
                return [os, arch, p["variant"]?.string].compactMap { $0 }.joined(separator: "/")
            }
            let mediaType = descriptor["mediaType"]?.string ?? Self.manifestTypes[0]
            let (_, data) = try blob(digest, field: here + ".digest")
            let document: JSON
            do {
                document = try JSON(parsing: data)
            } catch {
                throw .invalid("\(source): \(here): the manifest is not valid JSON: \(error)")
            }
            if Self.indexTypes.contains(mediaType) || (document["manifests"] != nil && document["layers"] == nil) {
                collection.indexes.insert(digest)
                try collect(index: document, field: here, depth: depth + 1, names: ownNames, into: &collection)
            } else if Self.manifestTypes.contains(mediaType) {
                collection.manifests[digest] = collection.candidates.count
                collection.candidates.append(try candidate(document, field: here, names: ownNames, platform: platform))
            } else {
                throw .invalid("\(source): \(here).mediaType: unsupported media type \"\(printable(mediaType, limit: 80))\"")
            }
        }
    }

    private func candidate(_ manifest: JSON, field: String, names: [String], platform: String?) throws(UrunError) -> Candidate {
        guard let configDigest = manifest["config"]?["digest"]?.string else {
            throw .invalid("\(source): \(field): the manifest has no config.digest")
        }
        let configHex = try Digest.hex(configDigest, source: source, field: field + " config.digest")
        guard let layers = manifest["layers"]?.array else { throw .invalid("\(source): \(field): the manifest has no layers") }
        var blobs: [(String, String?)] = []
        for (i, layer) in layers.enumerated() {
            let type = layer["mediaType"]?.string ?? ""
            guard Self.layerTypes.contains(type) else {
                throw .invalid("\(source): \(field) layers[\(i)]: unsupported media type \"\(printable(type, limit: 80))\" (foreign and encrypted layers are not supported)")
            }
            guard let digest = layer["digest"]?.string else { throw .invalid("\(source): \(field) layers[\(i)].digest: missing") }
            let hex = try Digest.hex(digest, source: source, field: "\(field) layers[\(i)].digest")
            blobs.append((blobMember(hex), hex))
        }
        return Candidate(
            names: names, platform: platform, configMember: blobMember(configHex), configDigest: configHex,
            layers: blobs)
    }

    // MARK: choosing one

    /// The image named `tag` (or `platform`, or with image `id`), or the only
    /// or first one with a notice; its configuration read and verified.
    /// `present` tells which layers (by diff id) the store has: only the others must be in the archive.
    func select(
        tag: String?, id: String? = nil, platform: String?, present: (String) -> Bool = { _ in false },
        notice: (String) -> Void
    ) throws(UrunError) -> Selected {
        var all = try candidates()
        guard !all.isEmpty else { throw .invalid("\(source): the archive holds no image") }
        var configs: [ImageConfig] = []
        for i in all.indices {
            let config = try configuration(all[i])
            configs.append(config)
            if all[i].platform == nil { all[i].platform = config.platform }
        }
        var chosen = Array(all.indices)
        if let id {
            chosen = chosen.filter { all[$0].configDigest == id }
            guard !chosen.isEmpty else { throw .invalid("\(source): image \(id.prefix(12)) is no longer in this archive") }
        }
        if let tag {
            chosen = chosen.filter { all[$0].names.contains { Self.name($0, matches: tag) } }
            guard !chosen.isEmpty else {
                let known = all.flatMap(\.names)
                throw .invalid("\(source): no image tagged \(printable(tag)) (it holds \(known.isEmpty ? "untagged images" : known.map { printable($0) }.joined(separator: ", ")))")
            }
        }
        let wanted = platform ?? Platform.native
        let matching = chosen.filter { all[$0].platform.map { Platform.matches($0, wanted: wanted) } ?? true }
        if matching.isEmpty {
            if platform != nil {
                throw .invalid("\(source): no image for \(wanted) (it has \(chosen.compactMap { all[$0].platform }.joined(separator: ", ")))")
            }
        } else {
            chosen = matching
        }
        if let tag {
            // A tag that names different images (two repositories' :latest)
            // picks none of them; one name on several platforms is no ambiguity.
            let matching = chosen.map { Set(all[$0].names.filter { Self.name($0, matches: tag) }) }
            if let first = matching.first, matching.contains(where: { $0.isDisjoint(with: first) }) {
                let names = Set(matching.flatMap { $0 }).sorted().map { printable($0) }
                throw .invalid("\(source): \(printable(tag)) is ambiguous: it matches \(names.joined(separator: ", ")); name one in full")
            }
        }
        if chosen.count > 1 {
            let shown = chosen.map { all[$0].names.first ?? "image \($0 + 1)" }
            notice("\(baseName(of: source)) holds \(chosen.count) images (\(shown.joined(separator: ", "))); using \(shown[0]). Pick one with \(baseName(of: source)):TAG")
        }
        let index = chosen[0]
        let candidate = all[index]
        let config = configs[index]
        guard config.diffIDs.count == candidate.layers.count else {
            throw .invalid("\(source): the manifest lists \(candidate.layers.count) layers, the configuration \(config.diffIDs.count) diff ids")
        }
        var id = candidate.configDigest ?? ""
        if id.isEmpty { id = SHA256.digest(of: try file(candidate.configMember, field: "config")) }
        let layers = zip(candidate.layers, config.diffIDs).map {
            Layer(member: dataMember($0.0.member), blobDigest: $0.0.digest, diffID: $0.1)
        }
        // Every layer the store lacks must be there before any is unpacked.
        if let absent = layers.first(where: { !present($0.diffID) && !contains($0.member) }) {
            throw .invalid("\(source): layer \(absent.member), named by the manifest, is not in the archive")
        }
        return Selected(id: id, names: candidate.names, config: config, layers: layers)
    }

    private func configuration(_ candidate: Candidate) throws(UrunError) -> ImageConfig {
        let data = try file(candidate.configMember, field: "config")
        if let expected = candidate.configDigest {
            let actual = SHA256.digest(of: data)
            guard actual == expected else {
                throw .invalid("\(source): \(candidate.configMember): sha256 is \(actual), the manifest says \(expected)")
            }
        }
        let json: JSON
        do {
            json = try JSON(parsing: data)
        } catch {
            throw .invalid("\(source): \(candidate.configMember): not valid JSON: \(error)")
        }
        return try ImageConfig(json: json, source: "\(source): \(candidate.configMember)")
    }

    /// "alpine:3.20" matches "alpine:3.20", "docker.io/library/alpine:3.20"
    /// and the tag "3.20" alone; "alpine" means "alpine:latest".
    static func name(_ name: String, matches wanted: String) -> Bool {
        if name == wanted { return true }
        let lastComponent = name.split(separator: "/").last.map(String.init) ?? name
        let full = wanted.contains(":") ? wanted : wanted + ":latest"
        return lastComponent == full || name == full || name.hasSuffix("/" + full) || (!wanted.contains(":") && name.hasSuffix(":" + wanted))
    }
}
