import Glibc
import UrunKernel

/// An image in the cache (images/<id>.json): where it came from, what it is
/// called, its configuration and its layers.
public struct ImageRecord: Sendable {
    public let id: String
    /// Tags from the archive ("alpine:3.20"), or a rootfs tarball's file name.
    public var names: [String]
    /// The archive it was loaded from.
    public let source: String?
    /// "rootfs", "docker" or "oci".
    public let format: String
    public let config: ImageConfig?
    /// Layer digests, bottom first.
    public let layers: [String]
    public let loaded: Timestamp
    /// A pulled image's manifest digest ("sha256:..."), as the registry knows it.
    public var digest: String?
    /// A pulled image's blobs in the store's blobs/ (manifest, config, layers as sent).
    public var blobs: [String] = []

    public var shortID: String { String(id.prefix(12)) }

    /// The name of this image that `reference` ("alpine", "alpine:3.20", "3.20") means, if any.
    public func name(matching reference: String) -> String? {
        names.first { ImageArchive.name($0, matches: reference) }
    }

    public var json: JSON {
        var object = JSON.object([
            ("id", .string(id)), ("names", .array(names.map(JSON.string))), ("format", .string(format)),
            ("layers", .array(layers.map(JSON.string))), ("loaded", .string(loaded.rfc3339)),
        ])
        if let source { object["source"] = .string(source) }
        if let digest { object["digest"] = .string(digest) }
        if !blobs.isEmpty { object["blobs"] = .array(blobs.map(JSON.string)) }
        if let config { object["config"] = config.json }
        return object
    }

    public static func read(_ path: String) -> ImageRecord? {
        guard let text = try? readText(path), let json = try? JSON(parsing: text),
            let id = json["id"]?.string, let layers = json["layers"]?.strings
        else { return nil }
        var record = ImageRecord(
            id: id, names: json["names"]?.strings ?? [], source: json["source"]?.string,
            format: json["format"]?.string ?? "rootfs",
            config: json["config"].flatMap { try? ImageConfig(json: $0, source: path) }, layers: layers,
            loaded: json["loaded"]?.string.flatMap(Timestamp.init(rfc3339:)) ?? .now())
        record.digest = json["digest"]?.string
        record.blobs = json["blobs"]?.strings ?? []
        return record
    }
}

/// What `urun images`, `rmi`, `image prune` and `system df` see and do.
extension ImageStore {
    /// Every image in the cache, the most recently loaded first.
    public func records() -> [ImageRecord] {
        let names = (try? directoryEntries(imagesDirectory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { ImageRecord.read(imagesDirectory + "/" + $0) }
            .sorted { $0.loaded > $1.loaded }
    }

    /// An image by name ("alpine:3.20", "alpine", "busybox.tar") or by id or id prefix.
    public func find(_ reference: String) -> ImageRecord? {
        let all = records()
        let bare = reference.hasPrefix("sha256:") ? String(reference.dropFirst(7)) : reference
        if let exact = all.first(where: { $0.id == bare }) { return exact }
        if let named = all.first(where: { $0.name(matching: reference) != nil }) { return named }
        let prefixed = all.filter { $0.id.hasPrefix(bare) }
        return bare.count >= 4 && prefixed.count == 1 ? prefixed[0] : nil
    }

    /// When the image was last used to start a container (its record's mtime).
    public func lastUsed(_ record: ImageRecord) -> Timestamp? {
        fileStatus(recordPath(record.id)).map { Timestamp(seconds: Int($0.st_mtim.tv_sec), nanoseconds: Int($0.st_mtim.tv_nsec)) }
    }

    /// Bytes of file data in a layer, as counted when it was unpacked.
    public func layerSize(_ digest: String) -> UInt64 {
        (try? readText(layersDirectory + "/" + layerName(digest) + ".size")).flatMap { UInt64($0.trimmingWhitespace()) } ?? 0
    }

    /// The image's size: its layers', each counted once.
    public func size(_ record: ImageRecord) -> UInt64 {
        Set(record.layers).reduce(0) { $0 + layerSize($1) }
    }

    /// Whether a running container holds the image (its lease).
    public func isLeased(_ id: String) -> Bool {
        let fd = open(recordPath(id), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { closeQuietly(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) != 0
    }

    /// Removes an image's record and every layer no other image uses; the
    /// keys that led to it go too. Refuses while a container runs it.
    public func remove(_ record: ImageRecord) throws(UrunError) {
        let storeLock = try lockStore(exclusive: true)
        defer { closeQuietly(storeLock) }
        let path = recordPath(record.id)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { closeQuietly(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            throw .invalid("image \(record.shortID) is in use by a running container")
        }
        try sys(.removeContainerDir, path: path) { unlink(path) }
        removeKeys(to: record.id)
        try removeUnusedLayers()
    }

    /// Writes a record whose names changed (`rmi` of one name; `rmi -f` of an
    /// image containers still use, which stays, nameless, until they are gone).
    public func update(_ record: ImageRecord) throws(UrunError) {
        let path = recordPath(record.id)
        let temporary = path + ".tmp-" + randomHex(bytes: 4)
        try writeFile(temporary, record.json.pretty() + "\n")
        try sys(.unpackImage, path: path) { rename(temporary, path) }
    }

    private func removeKeys(to id: String) {
        let keys = directory + "/keys"
        for name in (try? directoryEntries(keys)) ?? [] {
            var buffer = [CChar](repeating: 0, count: 512)
            let n = readlink(keys + "/" + name, &buffer, buffer.count - 1)
            let target = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
            if n <= 0 || baseName(of: target) == id + ".json" || access(keys + "/" + target, F_OK) != 0 {
                unlink(keys + "/" + name)
            }
        }
    }

    /// Layers (under any id mapping) and flattened trees that no image lists.
    /// Called with the store lock held exclusively. Returns the bytes freed.
    @discardableResult
    func removeUnusedLayers() throws(UrunError) -> UInt64 {
        let records = records()
        var used = Set(records.flatMap(\.layers))
        for record in records {
            used.insert("flat-" + SHA256.digest(of: Array(record.layers.joined(separator: " ").utf8)))
        }
        // A layer listed under another diff id (an alias made by save, push or commit) keeps its tree.
        for name in (try? directoryEntries(layersDirectory)) ?? [] where used.contains(String(name.split(separator: "@").first ?? "")) {
            var buffer = [CChar](repeating: 0, count: 512)
            let n = readlink(layersDirectory + "/" + name, &buffer, buffer.count - 1)
            if n > 0 {
                let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                used.insert(String(target.split(separator: "@").first ?? ""))
            }
        }
        var freed: UInt64 = 0
        for name in (try? directoryEntries(layersDirectory)) ?? [] where !name.hasSuffix(".size") {
            let digest = String(name.split(separator: "@").first ?? "")
            guard !used.contains(digest) else { continue }
            let path = layersDirectory + "/" + name
            freed += (try? readText(path + ".size")).flatMap { UInt64($0.trimmingWhitespace()) } ?? 0
            try removeAsOwner(path)
            unlink(path + ".size")
        }
        // Pulled blobs no image lists (partial downloads stay, for the next pull to resume).
        let blobs = Set(records.flatMap(\.blobs))
        for name in (try? directoryEntries(blobsDirectory + "/sha256")) ?? [] where !blobs.contains(name) {
            let path = blobsDirectory + "/sha256/" + name
            freed += fileStatus(path).map { UInt64($0.st_size) } ?? 0
            unlink(path)
        }
        removeLeftovers()
        return freed
    }

    /// `urun image prune`: images no container uses (`inUse`: ids of kept
    /// containers' images) and, without `all`, only nameless ones; then the
    /// layers nothing lists. Returns the ids removed and the bytes freed.
    public func prune(all: Bool, inUse: Set<String>) throws(UrunError) -> (removed: [String], freed: UInt64) {
        guard fileStatus(directory + "/images") != nil else { return ([], 0) }
        let storeLock = try lockStore(exclusive: true)
        defer { closeQuietly(storeLock) }
        var removed: [String] = []
        for record in records() where !inUse.contains(record.id) && (all || record.names.isEmpty) {
            let fd = open(recordPath(record.id), O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { closeQuietly(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            unlink(recordPath(record.id))
            removeKeys(to: record.id)
            removed.append(record.id)
        }
        let freed = try removeUnusedLayers()
        return (removed, freed)
    }
}
