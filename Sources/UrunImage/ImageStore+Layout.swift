import CUrunArchive
import Glibc
import UrunKernel

/// One image as the OCI image spec describes it: its manifest and the blobs
/// it names, all in the store's blobs/.
public struct ImageBlobs: Sendable {
    public static let manifestType = "application/vnd.oci.image.manifest.v1+json"
    public static let configType = "application/vnd.oci.image.config.v1+json"
    public static let layerType = "application/vnd.oci.image.layer.v1.tar+gzip"

    public struct Layer: Sendable {
        public let hex: String
        public let size: Int64
        public let mediaType: String
        /// The diff id (sha256 of the uncompressed tar).
        public let diffID: String

        public init(hex: String, size: Int64, mediaType: String, diffID: String) {
            self.hex = hex
            self.size = size
            self.mediaType = mediaType
            self.diffID = diffID
        }
    }

    public let manifestHex: String
    public let manifestSize: Int
    public let mediaType: String
    public let configHex: String
    public let configSize: Int
    public let config: ImageConfig
    public let layers: [Layer]

    /// Every blob's hex: manifest, configuration, layers.
    public var all: [String] { [manifestHex, configHex] + layers.map(\.hex) }
}

/// Images out of the store: as OCI layouts (save, push, commit's parent),
/// and new layers from trees (commit).
extension ImageStore {
    public var blobStore: BlobDirectory { BlobDirectory(blobsDirectory) }

    /// The image's blobs: a pulled image's own, byte for byte, while the store
    /// has them all; otherwise layers written from its trees, with a
    /// configuration and a manifest to match (the image then has a new id, as
    /// after docker save of an image docker did not pull).
    public func blobs(of record: ImageRecord) throws(UrunError) -> ImageBlobs {
        if let kept = try keptBlobs(of: record) { return kept }
        var layers: [ImageBlobs.Layer] = []
        for diffID in record.layers {
            let tree = layersDirectory + "/" + layerName(diffID)
            guard fileStatus(tree) != nil else { throw .invalid("image \(record.shortID): layer \(diffID.prefix(12)) is not in the cache under this id mapping") }
            let written = try writeLayer(from: tree)
            // The same files under the new diff id: an image made of this one (a commit) finds them there.
            let alias = layersDirectory + "/" + layerName(written.diffID)
            if written.diffID != diffID && fileStatus(alias) == nil {
                symlink(layerName(diffID), alias)
                try? writeFile(alias + ".size", "\(layerSize(diffID))\n")
            }
            layers.append(ImageBlobs.Layer(hex: written.digest, size: written.size, mediaType: ImageBlobs.layerType, diffID: written.diffID))
        }
        var config = record.config ?? ImageConfig()
        if record.config == nil {
            let native = Platform.native.split(separator: "/").map(String.init)
            config.os = native[0]
            config.architecture = native[1]
            config.cmd = ["/bin/sh"]
        }
        config.diffIDs = layers.map(\.diffID)
        return try store(config: config, layers: layers)
    }

    /// Writes the configuration and a manifest for `layers` (already in blobs/).
    public func store(config: ImageConfig, layers: [ImageBlobs.Layer]) throws(UrunError) -> ImageBlobs {
        let configBytes = Array(config.json.serialized().utf8)
        let configHex = try blobStore.store(configBytes)
        let manifest = JSON.object([
            ("schemaVersion", .int(2)), ("mediaType", .string(ImageBlobs.manifestType)),
            ("config", Self.descriptor(ImageBlobs.configType, configHex, Int64(configBytes.count))),
            ("layers", .array(layers.map { Self.descriptor($0.mediaType, $0.hex, $0.size) })),
        ])
        let manifestBytes = Array(manifest.serialized().utf8)
        return ImageBlobs(
            manifestHex: try blobStore.store(manifestBytes), manifestSize: manifestBytes.count, mediaType: ImageBlobs.manifestType,
            configHex: configHex, configSize: configBytes.count, config: config, layers: layers)
    }

    static func descriptor(_ mediaType: String, _ hex: String, _ size: Int64) -> JSON {
        .object([("mediaType", .string(mediaType)), ("digest", .string("sha256:" + hex)), ("size", .int(size))])
    }

    /// A pulled image's manifest and blobs, when all are still in blobs/.
    private func keptBlobs(of record: ImageRecord) throws(UrunError) -> ImageBlobs? {
        guard let digest = record.digest, digest.hasPrefix("sha256:") else { return nil }
        let manifestHex = String(digest.dropFirst(7))
        guard blobStore.has(manifestHex), let bytes = try? readFile(blobStore.path(manifestHex), limit: 4 << 20),
            let manifest = try? JSON(parsing: bytes), let configDigest = manifest["config"]?["digest"]?.string,
            let layers = manifest["layers"]?.array
        else { return nil }
        let configHex = String(configDigest.dropFirst(7))
        guard blobStore.has(configHex), let configBytes = try? readFile(blobStore.path(configHex), limit: 16 << 20),
            let configJSON = try? JSON(parsing: configBytes)
        else { return nil }
        let config = try ImageConfig(json: configJSON, source: "blob sha256:\(configHex)")
        guard config.diffIDs.count == layers.count else { return nil }
        var described: [ImageBlobs.Layer] = []
        for (layer, diffID) in zip(layers, config.diffIDs) {
            guard let hex = layer["digest"]?.string.map({ String($0.dropFirst(7)) }), blobStore.has(hex),
                let size = layer["size"]?.integer(Int64.self)
            else { return nil }
            described.append(ImageBlobs.Layer(hex: hex, size: size, mediaType: layer["mediaType"]?.string ?? ImageBlobs.layerType, diffID: diffID))
        }
        return ImageBlobs(
            manifestHex: manifestHex, manifestSize: bytes.count,
            mediaType: manifest["mediaType"]?.string ?? ImageBlobs.manifestType, configHex: configHex,
            configSize: configBytes.count, config: config, layers: described)
    }

    /// A tree (a layer of the store, a container's upper directory) as a
    /// gzip'd layer in blobs/: written where its owners read as the
    /// container's (the store's user namespace).
    public func writeLayer(from tree: String) throws(UrunError) -> LayerWriter.Written {
        try makeDirectories(blobsDirectory + "/sha256", mode: 0o700, step: .writeFile)
        let temporary = blobsDirectory + "/sha256/.new-" + randomHex(bytes: 8)
        let result = temporary + ".result"
        defer {
            unlink(temporary)
            unlink(result)
        }
        let caller = (getuid(), getgid())
        let mapped = mapping != nil
        let write = { () throws(UrunError) in
            let root = try sys(.readFile, path: tree) { open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            defer { closeQuietly(root) }
            let output = try sys(.writeFile, path: temporary) { open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
            defer { closeQuietly(output) }
            // Without subordinate ids the caller's files are root's in the container.
            let writer = LayerWriter(form: .layer, gzip: true) { uid, gid in
                mapped ? (uid, gid) : (uid == caller.0 ? 0 : uid, gid == caller.1 ? 0 : gid)
            }
            let written = try writer.write(root, display: tree, to: output)
            try writeFile(result, "\(written.diffID) \(written.digest) \(written.size)\n", mode: 0o600)
        }
        if let mapping { try mapping.run(write) } else { try write() }
        let fields = ((try? readText(result)) ?? "").split(separator: " ").map { String($0).trimmingWhitespace() }
        guard fields.count == 3, let size = Int64(fields[2]) else { throw .invalid("\(tree): the layer was not written") }
        try blobStore.install(temporary, as: fields[1])
        return LayerWriter.Written(diffID: fields[0], digest: fields[1], size: size)
    }

    /// An OCI image layout in `directory` holding `images`, each under its names.
    public func writeLayout(_ images: [(blobs: ImageBlobs, names: [String])], into directory: String) throws(UrunError) {
        try makeDirectories(directory + "/blobs/sha256", mode: 0o700, step: .writeFile)
        try writeFile(directory + "/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}\n", mode: 0o600)
        var manifests: [JSON] = []
        for (blobs, names) in images {
            for hex in blobs.all { try blobStore.link(hex, into: directory) }
            for name in names.isEmpty ? [nil] : names.map(Optional.some) {
                var descriptor = Self.descriptor(blobs.mediaType, blobs.manifestHex, Int64(blobs.manifestSize))
                if let name {
                    var annotations = JSON.object([("io.containerd.image.name", .string(name))])
                    if let colon = name.lastIndex(of: ":"), !name[colon...].contains("/") {
                        annotations["org.opencontainers.image.ref.name"] = .string(String(name[name.index(after: colon)...]))
                    }
                    descriptor["annotations"] = annotations
                }
                manifests.append(descriptor)
            }
        }
        let index = JSON.object([("schemaVersion", .int(2)), ("manifests", .array(manifests))])
        try writeFile(directory + "/index.json", index.serialized() + "\n", mode: 0o600)
    }

    /// docker's manifest.json beside the OCI index (docker save writes both since
    /// docker 25), so that `docker load` and OCI tools read the one archive.
    public func writeDockerManifest(_ images: [(blobs: ImageBlobs, names: [String])], into directory: String) throws(UrunError) {
        let entries = images.map { image -> JSON in
            .object([
                ("Config", .string("blobs/sha256/" + image.blobs.configHex)),
                ("RepoTags", .array(image.names.map(JSON.string))),
                ("Layers", .array(image.blobs.layers.map { .string("blobs/sha256/" + $0.hex) })),
            ])
        }
        try writeFile(directory + "/manifest.json", JSON.array(entries).serialized() + "\n", mode: 0o600)
    }
}

/// `urun save`'s archive formats.
public enum SaveFormat: String, CaseIterable, Sendable {
    /// docker's: manifest.json, with the OCI layout beside it (as docker 25 writes it).
    case dockerArchive = "docker-archive"
    /// An OCI image layout in a tar.
    case ociArchive = "oci-archive"
}

extension ImageStore {
    /// `urun save`: the images (each under the names given) as one archive written to `output`.
    public func save(_ images: [(record: ImageRecord, names: [String])], format: SaveFormat, to output: CInt) throws(UrunError) {
        try prepareDirectories()
        let (directory, lock) = try makeTemporary("save")
        defer {
            try? removeTree(directory)
            closeQuietly(lock)
        }
        var described: [(blobs: ImageBlobs, names: [String])] = []
        for image in images { described.append((try blobs(of: image.record), image.names)) }
        try writeLayout(described, into: directory)
        if format == .dockerArchive { try writeDockerManifest(described, into: directory) }
        let root = try sys(.readFile, path: directory) { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { closeQuietly(root) }
        _ = try LayerWriter(form: .tree, gzip: false) { _, _ in (0, 0) }.write(root, display: directory, to: output)
    }

    /// The names of the images an archive or layout holds (`urun load` loads each).
    public func names(in path: String) throws(UrunError) -> [String] {
        guard let st = fileStatus(path, followLinks: true) else { throw .kernel(.openImage, path: path, .current) }
        let archive: ImageArchive
        if isDirectory(st) {
            archive = ImageArchive(source: path, directory: try LayoutDirectory(path: path))
        } else {
            let reader = try TarReader(try decompressed(FileSource(path: path), name: path), name: path)
            var entry = try reader.next()
            while let current = entry, ImageArchive.isRoot(archive_entry_pathname(current).map { String(cString: $0) } ?? "") {
                entry = try reader.next()
            }
            guard let first = entry else { throw .invalid("\(printable(path)): an empty archive") }
            archive = try ImageArchive(source: path, reader: reader, first: first)
        }
        guard archive.format != nil else { return [] }
        var names: [String] = []
        for candidate in try archive.candidates() { names += candidate.names.filter { !names.contains($0) } }
        return names
    }

    /// `urun tag`: `name` goes to the image, from any other that had it.
    public func tag(_ record: ImageRecord, as name: String) throws(UrunError) {
        for other in records() where other.id != record.id && other.names.contains(name) {
            var untagged = other
            untagged.names.removeAll { $0 == name }
            try update(untagged)
        }
        guard var current = ImageRecord.read(recordPath(record.id)) else { throw .invalid("image \(record.shortID) is gone") }
        if !current.names.contains(name) { current.names.append(name) }
        try update(current)
    }
}
