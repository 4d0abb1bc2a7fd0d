import CUrunArchive
import CUrunSyscalls
import Glibc
import UrunKernel

/// A user namespace with subordinate ids that layers are unpacked in, so
/// their files keep their owners: made by whoever builds the store (the
/// container code, with UrunUserNS), named here by its identity.
public struct UnpackNamespace: Sendable {
    /// Marks the layers unpacked in it: `<digest>@<identity>`.
    public let identity: String
    /// Runs the body in a child process inside the namespace, returning once it is done.
    public let run: @Sendable (() throws(UrunError) -> Void) throws(UrunError) -> Void

    public init(identity: String, run: @escaping @Sendable (() throws(UrunError) -> Void) throws(UrunError) -> Void) {
        self.identity = identity
        self.run = run
    }
}

/// The content-addressed cache of unpacked images:
///
///     <cache>/layers/<sha256>[@<map>]/       an unpacked layer: a read-only overlay lower layer
///     <cache>/layers/<sha256>[@<map>].size   its size in bytes
///     <cache>/layers/flat-<sha256>[@<map>]/  all layers of an image in one tree (too many to stack)
///     <cache>/images/<id>.json               an image: names, configuration, layers (bottom first)
///     <cache>/keys/<cheap key> -> ../images/<id>.json
///     <cache>/blobs/sha256/<sha256>         blobs pulled from registries, verified
///     <cache>/blobs/partial/<sha256>        downloads in progress (resumed by the next pull)
///     <cache>/tmp/                           unpacks and pulls in progress
///     <cache>/locks/                         one unpacker per archive; the store lock
///
/// A layer is named by the sha256 of its uncompressed tar (its diff id; for a
/// plain rootfs tarball, of the file itself), so images that share a layer
/// share its tree. `@<map>` marks trees unpacked inside a user namespace with
/// subordinate ids, whose files keep their owners.
///
/// The cheap key (device, inode, size, mtime, ctime of the archive) lets a warm
/// start find its image with a stat and a readlink, without reading the archive.
/// Every unpack goes to tmp/ and is renamed into place only when complete and
/// verified, so a crash, a full disk, ^C or a digest mismatch never leaves a
/// tree that a later run would use.
public struct ImageStore: Sendable {
    public let directory: String
    /// The user namespace layers are unpacked in; nil: the caller's own ids.
    public let mapping: UnpackNamespace?

    /// Removes a tree of the cache; given by the store's builder, which can
    /// also remove what a container's other users (subordinate ids) made.
    public let removeAsOwner: @Sendable (String) throws(UrunError) -> Void

    public init(
        directory: String, unpackingIn mapping: UnpackNamespace? = nil,
        removeAsOwner: @escaping @Sendable (String) throws(UrunError) -> Void = { (path) throws(UrunError) in try removeTree(path) }
    ) {
        self.directory = directory
        self.mapping = mapping
        self.removeAsOwner = removeAsOwner
    }

    public var layersDirectory: String { directory + "/layers" }
    /// Blobs pulled from registries, as they came (kept for save and push).
    public var blobsDirectory: String { directory + "/blobs" }
    var imagesDirectory: String { directory + "/images" }
    /// A layer's directory name under this store's mapping.
    public func layerName(_ digest: String) -> String { digest + (mapping.map { "@" + $0.identity } ?? "") }
    public func recordPath(_ id: String) -> String { imagesDirectory + "/" + id + ".json" }

    /// What overlayfs takes in its lowerdir option: the whole option string
    /// must fit in a page. Beyond, the layers are flattened into one tree.
    static let lowerdirBudget = 3900

    // MARK: resolving a reference

    /// skopeo's and podman's names for where an image is: `oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:TAG]`, `dir:DIR`.
    enum Transport: String, CaseIterable {
        case oci, ociArchive = "oci-archive", dockerArchive = "docker-archive", dir

        var wantsDirectory: Bool { self == .oci || self == .dir }
    }

    /// Whether `text` starts with one of skopeo's local transports (oci:, docker-archive:, ...).
    public static func hasTransportPrefix(_ text: String) -> Bool {
        Transport.allCases.contains { text.hasPrefix($0.rawValue + ":") }
    }

    /// The image `reference` names: a directory (a root filesystem used as it
    /// is, or an OCI or "dir:" layout), an archive (`alpine.tar`, or
    /// `alpine.tar:3.20` for one image of several), either behind one of
    /// skopeo's transport prefixes, or an image in the cache by name or id.
    /// An archive or layout is unpacked on first use.
    public func image(for reference: String, platform: String? = nil, showProgress: Bool = false) throws(UrunError)
        -> Image
    {
        var text = reference
        let transport = Transport.allCases.first { reference.hasPrefix($0.rawValue + ":") }
        if let transport { text.removeFirst(transport.rawValue.count + 1) }
        if let (path, st, tag) = try locate(text) {
            let layout = isDirectory(st) && LayoutDirectory.holdsLayout(path)
            if let transport, transport.wantsDirectory != isDirectory(st) || (isDirectory(st) && !layout) {
                throw .invalid("\(printable(reference)): \(transport.rawValue): names \(transport.wantsDirectory ? "an image layout directory" : "an archive file"), and \(printable(path)) is \(isDirectory(st) ? (layout ? "a directory" : "a directory without oci-layout and index.json") : "a file")")
            }
            if isDirectory(st) && !layout {
                guard tag == nil else {
                    throw .invalid("image \(printable(path)) is a root filesystem directory: it has no tags (drop \":\(printable(tag!))\")")
                }
                guard access(path, R_OK | X_OK) == 0 else { throw .invalid("image \(printable(reference)): \(Errno.current.message)") }
                return Image(id: nil, names: [path], layers: [path], layerBase: nil, config: nil, lease: nil)
            }
            guard isDirectory(st) || isRegularFile(st) else { throw .invalid("image \(printable(reference)): not a file or directory") }
            return try archiveImage(path, st: st, tag: tag, platform: platform, showProgress: showProgress)
        }
        let lookup = Errno.current
        if transport == nil, let record = find(reference) {
            return try image(of: record, platform: platform, showProgress: showProgress)
        }
        guard lookup == .noSuchFileOrDirectory else { throw .invalid("image \(printable(reference)): \(lookup.message)") }
        throw .noSuchImage(transport == nil ? reference : text)
    }

    /// The existing file or directory `text` names, and the tag after it:
    /// the whole text, or its part before a colon (FILE:TAG, where the tag may
    /// hold colons too: alpine.tar:docker.io/library/alpine:3.20). A plain
    /// directory never takes a tag: `name:tag` beside a directory `name` is
    /// the cached image.
    private func locate(_ text: String) throws(UrunError) -> (String, stat, String?)? {
        if let st = fileStatus(text, followLinks: true) { return (try UrunPaths.absolute(text), st, nil) }
        let missing = Errno.current
        for colon in text.indices where text[colon] == ":" && colon != text.startIndex {
            let file = String(text[..<colon])
            guard let st = fileStatus(file, followLinks: true) else { continue }
            guard isRegularFile(st) || (isDirectory(st) && LayoutDirectory.holdsLayout(file)) else { continue }
            return (try UrunPaths.absolute(file), st, String(text[text.index(after: colon)...]))
        }
        errno = missing.rawValue
        return nil
    }

    /// A cached image, by id: `urun start` of a kept container.
    public func image(id: String) throws(UrunError) -> Image {
        guard let record = ImageRecord.read(recordPath(id)) else {
            throw .invalid("image \(id.prefix(12)) is no longer in the cache (removed with urun rmi?)")
        }
        return try image(of: record, platform: nil, showProgress: false)
    }

    private func image(of record: ImageRecord, platform: String?, showProgress: Bool) throws(UrunError) -> Image {
        if !layersPresent(record) {
            // Unpacked under another id mapping: unpack again from its archive.
            guard let source = record.source, let st = fileStatus(source, followLinks: true) else {
                if let source = record.source, source.hasPrefix(Self.registrySource) {
                    throw .noSuchImage(String(source.dropFirst(Self.registrySource.count)))
                }
                throw .invalid("image \(record.shortID) has no layers for this id mapping and its archive is gone; load it again")
            }
            return try archiveImage(source, st: st, tag: nil, id: record.id, platform: platform, showProgress: showProgress)
        }
        return try finish(record)
    }

    private func archiveImage(
        _ path: String, st: stat, tag: String?, id: String? = nil, platform: String?, showProgress: Bool
    ) throws(UrunError) -> Image {
        guard access(path, isDirectory(st) ? R_OK | X_OK : R_OK) == 0 else {
            throw .invalid("image \(printable(path)): \(Errno.current.message)")
        }
        var key = Self.cheapKey(st)
        if isDirectory(st) { key += LayoutDirectory.keyFiles(path).map { "+" + Self.cheapKey($0) }.joined() }
        if tag != nil || id != nil || platform != nil {
            // Hashed: a tag may be long and hold any character; a key is a file name.
            key += "=" + SHA256.digest(of: Array([tag, id, platform].map { $0 ?? "" }.joined(separator: "\n").utf8)).prefix(32)
        }
        if let record = lookup(key), layersPresent(record) { return try finish(record) }

        try prepareDirectories()
        let storeLock = try lockStore(exclusive: false)
        defer { closeQuietly(storeLock) }
        urun_install_interrupt_flag()
        defer { urun_remove_interrupt_flag() }
        let request = LoadRequest(
            path: path, isDirectory: isDirectory(st), key: key, tag: tag, id: id, platform: platform, showProgress: showProgress)
        if let mapping {
            try mapping.run { () throws(UrunError) in try load(request) }
        } else {
            try load(request)
        }
        guard let record = lookup(key), layersPresent(record) else {
            throw .invalid("image \(path): unpacked, but its record is missing from \(directory)")
        }
        return try finish(record)
    }

    /// The source recorded for an image pulled from a registry: `docker://` and its name.
    public static let registrySource = "docker://"

    /// An image urun-transfer pulled: the OCI layout it wrote is unpacked
    /// (the layers the store lacks) and recorded under `name`, which moves to
    /// it from any image that had it, as a tag moves in docker.
    public func importPulled(layout: String, name: String, platform: String?, showProgress: Bool) throws(UrunError) -> Image {
        try importLayout(layout, name: name, source: Self.registrySource + name, platform: platform, showProgress: showProgress)
    }

    /// An OCI layout urun wrote (a pull's, a commit's): unpacked and recorded,
    /// its blobs kept in blobs/ for save and push.
    public func importLayout(_ layout: String, name: String?, source: String, platform: String?, showProgress: Bool)
        throws(UrunError) -> Image
    {
        try prepareDirectories()
        let key = "import-" + SHA256.digest(of: Array((name ?? source).utf8)).prefix(32)
        do {
            let storeLock = try lockStore(exclusive: false)
            defer { closeQuietly(storeLock) }
            urun_install_interrupt_flag()
            defer { urun_remove_interrupt_flag() }
            var request = LoadRequest(
                path: layout, isDirectory: true, key: key, tag: nil, id: nil, platform: platform, showProgress: showProgress)
            request.source = source
            request.reuse = false
            if let mapping {
                try mapping.run { () throws(UrunError) in try load(request) }
            } else {
                try load(request)
            }
        }
        guard var record = lookup(key), layersPresent(record) else {
            throw .invalid("\(name ?? source): unpacked, but its record is missing from \(directory)")
        }
        if name == nil { unlink(directory + "/keys/" + key) }
        // The blobs as the registry sent them (kept for save and push): the layout's.
        record.blobs = ((try? directoryEntries(layout + "/blobs/sha256")) ?? []).sorted()
        let index = (try? readFile(layout + "/index.json")).flatMap { try? JSON(parsing: $0) }
        record.digest = index?["manifests"]?.array?.first?["digest"]?.string
        try update(record)
        if let name { try tag(record, as: name) }
        return try finish(record)
    }

    /// The image as a container uses it: flattened if it has too many layers to stack, and leased.
    private func finish(_ record: ImageRecord) throws(UrunError) -> Image {
        var layers = record.layers.reversed().map(layerName)
        let optionBytes = layers.reduce(0) { $0 + $1.utf8.count + 1 }
        if optionBytes > Self.lowerdirBudget {
            let flat = "flat-" + SHA256.digest(of: Array(record.layers.joined(separator: " ").utf8))
            if fileStatus(layersDirectory + "/" + layerName(flat)) == nil {
                let storeLock = try lockStore(exclusive: false)
                defer { closeQuietly(storeLock) }
                let flatten = { () throws(UrunError) in try Flattener(store: self).flatten(layers: layers, digest: flat) }
                if let mapping { try mapping.run(flatten) } else { try flatten() }
            }
            layers = [layerName(flat)]
        }
        return Image(
            id: record.id, names: record.names, layers: layers, layerBase: layersDirectory, config: record.config,
            lease: ImageLease(record: recordPath(record.id)))
    }

    func layersPresent(_ record: ImageRecord) -> Bool {
        record.layers.allSatisfy { fileStatus(layersDirectory + "/" + layerName($0)) != nil }
    }

    /// The archive file's identity: any change to its content changes its
    /// size, mtime or at least ctime, and a copy has another inode.
    static func cheapKey(_ st: stat) -> String {
        "\(st.st_dev)-\(st.st_ino)-\(st.st_size)-\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)-\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
    }

    private func lookup(_ key: String) -> ImageRecord? {
        var buffer = [CChar](repeating: 0, count: 512)
        let n = readlink(directory + "/keys/" + key, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return ImageRecord.read(imagesDirectory + "/" + baseName(of: target))
    }

    public func prepareDirectories() throws(UrunError) {
        for sub in ["layers", "images", "keys", "tmp", "locks"] {
            try makeDirectories(directory + "/" + sub, mode: 0o700, step: .unpackImage)
        }
    }

    /// A lock file of the cache, opened read-only: flock(2) needs no more,
    /// and unpackers of other id mappings (keep-id's root is a subordinate
    /// id) create them under owners that may not write each other's.
    static func openLock(_ path: String) -> CInt {
        urun_open_mode(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
    }

    /// Unpacking holds the store lock shared; removal holds it exclusively,
    /// so that no layer is removed between its unpack and its image's record.
    func lockStore(exclusive: Bool) throws(UrunError) -> CInt {
        let path = directory + "/locks/store.lock"
        let fd = try sys(.unpackImage, path: path) { Self.openLock(path) }
        if flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            closeQuietly(fd)
            throw .kernel(.unpackImage, path: path, .current)
        }
        return fd
    }

    // MARK: loading an archive

    struct LoadRequest {
        let path: String
        /// A layout directory rather than an archive file.
        let isDirectory: Bool
        let key: String
        let tag: String?
        let id: String?
        let platform: String?
        let showProgress: Bool
        /// What the record names as the image's source, when not `path`.
        var source: String?
        /// Whether an image already recorded under `key` is used as it is.
        var reuse = true
    }

    /// Reads the archive and unpacks what the cache lacks; run by the
    /// unpacking process (inside the user namespace with subordinate ids).
    private func load(_ request: LoadRequest) throws(UrunError) {
        let lockPath = directory + "/locks/" + request.key + ".lock"
        let lock = try sys(.unpackImage, path: lockPath) { Self.openLock(lockPath) }
        defer { closeQuietly(lock) }
        try sys(.unpackImage, path: lockPath) { flock(lock, LOCK_EX) }
        // Another urun may have unpacked it while we waited for the lock.
        if request.reuse, let record = lookup(request.key), layersPresent(record) { return }
        removeLeftovers()

        let record: ImageRecord
        if request.isDirectory {
            let layout = try LayoutDirectory(path: request.path)
            let archive = ImageArchive(source: request.path, directory: layout)
            guard archive.format != nil else {
                throw .invalid("\(printable(request.path)): neither an OCI layout (oci-layout, index.json) nor a dir: layout (manifest.json, version)")
            }
            record = try loadImage(archive, request, meter: ProgressMeter(label: "", total: 0, enabled: false)) {
                (missing) throws(UrunError) in
                for layer in missing.values {
                    try unpackLayer(layer, try layout.source(layer.member), source: request.path)
                }
            }
        } else {
            record = try loadArchive(request)
        }
        try save(record)
        let link = directory + "/keys/" + request.key
        let staging = link + ".tmp-" + randomHex(bytes: 4)
        try sys(.unpackImage, path: link) { symlink("../images/" + record.id + ".json", staging) }
        try sys(.unpackImage, path: link) { rename(staging, link) }
    }

    /// An archive file: an image archive or a root filesystem tarball, told
    /// apart by content. A root filesystem's "./" says nothing; the first
    /// member after it does: an image archive starts with names no root
    /// filesystem has (manifest.json, blobs/, <digest>.tar...), and is read
    /// once, keeping its small members. Should one turn out to have neither
    /// manifest.json nor index.json, it is a root filesystem after all and is
    /// read again from the start.
    private func loadArchive(_ request: LoadRequest) throws(UrunError) -> ImageRecord {
        let meter = ProgressMeter(label: baseName(of: request.path), total: fileStatus(request.path, followLinks: true).map { UInt64(max(0, $0.st_size)) } ?? 0, enabled: request.showProgress)
        defer { meter.finish() }
        let input = try ArchiveInput(request.path, meter: meter)
        let reader = try TarReader(input.source, name: request.path)
        var root: (mode: mode_t, mtime: timespec)?
        var entry = try reader.next()
        while let current = entry, ImageArchive.isRoot(archive_entry_pathname(current).map { String(cString: $0) } ?? "") {
            root = (archive_entry_perm(current) & 0o7777, timespec(tv_sec: archive_entry_mtime(current), tv_nsec: archive_entry_mtime_nsec(current)))
            entry = try reader.next()
        }
        guard let first = entry else { throw .invalid("\(printable(request.path)): an empty archive") }
        let firstName = archive_entry_pathname(first).map { String(cString: $0) } ?? ""

        if ImageArchive.mayBeImageArchive(firstMember: firstName) {
            let archive = try ImageArchive(source: request.path, reader: reader, first: first)
            if archive.format != nil {
                return try loadImage(archive, request, meter: meter) { (missing) throws(UrunError) in
                    try unpackLayers(missing, from: request.path, meter: meter)
                }
            }
            try refuseTag(request)
            let again = try ArchiveInput(request.path, meter: meter)
            let rereader = try TarReader(again.source, name: request.path)
            return rootfsRecord(try unpackRootfs(rereader, first: nil, root: nil, input: again, name: request.path), request)
        }
        try refuseTag(request)
        return rootfsRecord(try unpackRootfs(reader, first: first, root: root, input: input, name: request.path), request)
    }

    /// FILE:TAG of a root filesystem tarball: it has no images to pick from.
    private func refuseTag(_ request: LoadRequest) throws(UrunError) {
        guard let tag = request.tag else { return }
        throw .invalid("image \(printable(request.path)) is a root filesystem tarball: it has no tags (drop \":\(printable(tag))\")")
    }

    private func rootfsRecord(_ digest: String, _ request: LoadRequest) -> ImageRecord {
        ImageRecord(
            id: digest, names: [baseName(of: request.path)], source: request.path, format: "rootfs", config: nil,
            layers: [digest], loaded: .now())
    }

    /// An image archive or layout: the image chosen, the layers the cache lacks unpacked.
    private func loadImage(
        _ archive: ImageArchive, _ request: LoadRequest, meter: ProgressMeter,
        unpack: ([String: ImageArchive.Layer]) throws(UrunError) -> Void
    ) throws(UrunError) -> ImageRecord {
        let selected = try archive.select(
            tag: request.tag, id: request.id, platform: request.platform,
            present: { fileStatus(layersDirectory + "/" + layerName($0)) != nil }
        ) { notice in
            meter.finish()
            writeQuietly(2, "urun: \(printableMessage(notice))\n")
        }
        var missing: [String: ImageArchive.Layer] = [:]
        for layer in selected.layers where fileStatus(layersDirectory + "/" + layerName(layer.diffID)) == nil {
            missing[layer.member] = layer
        }
        if !missing.isEmpty { try unpack(missing) }
        // A "dir:" layout has no tags: it is known by its directory's name, as a tarball by its file's.
        let names = selected.names.isEmpty && archive.format == .dockerDir ? [baseName(of: request.path)] : selected.names
        return ImageRecord(
            id: selected.id, names: names, source: request.source ?? request.path, format: archive.format?.rawValue ?? "docker",
            config: selected.config, layers: selected.layers.map(\.diffID), loaded: .now())
    }

    /// A plain root filesystem tarball: one layer, named by the file's sha256.
    private func unpackRootfs(
        _ reader: TarReader, first: OpaquePointer?, root rootEntry: (mode: mode_t, mtime: timespec)?,
        input: ArchiveInput, name: String
    ) throws(UrunError) -> String {
        let (temporary, root) = try makeTemporary("rootfs")
        defer { closeQuietly(root) }
        do throws(UrunError) {
            var extractor = Extractor(root: root, rootPath: temporary, options: extractorOptions(whiteouts: false))
            if let rootEntry { extractor.restoreRoot(mode: rootEntry.mode, mtime: rootEntry.mtime) }
            try extractor.extract(from: reader, first: first)
            let digest = try input.digest()
            report(extractor, name: name)
            try install(temporary, as: digest, size: extractor.bytesWritten)
            return digest
        } catch {
            try? removeTree(temporary)
            throw error
        }
    }

    /// The second pass over an image archive: each missing layer is
    /// unpacked straight from its member, decompressed and hashed on the way.
    private func unpackLayers(_ missing: [String: ImageArchive.Layer], from path: String, meter: ProgressMeter)
        throws(UrunError)
    {
        var pending = missing
        let input = try ArchiveInput(path, meter: meter, hashing: false)
        let reader = try TarReader(input.source, name: path)
        // In a plain (uncompressed) archive, as `docker save` writes it, a
        // layer is a range of the file: read there, it can go to a
        // decompressing child like a layer file (DecompressorProcess).
        let plain = input.isPlain ? Self.openPlainTar(path) : nil
        defer { plain.map { closeQuietly($0.fd) } }
        while !pending.isEmpty, let entry = try reader.next() {
            let member = ImageArchive.normalize(archive_entry_pathname(entry).map { String(cString: $0) } ?? "")
            guard let layer = pending.removeValue(forKey: member), archive_entry_filetype(entry) == S_IFREG else { continue }
            if let plain, let range = TarReader.dataRange(in: plain.fd, header: reader.headerPosition, size: archive_entry_size(entry), fileSize: plain.size),
                case let copy = urun_dup_cloexec(plain.fd), copy >= 0
            {
                try unpackLayer(layer, FileSource(descriptor: copy, path: path, range: range), source: path)
            } else {
                try unpackLayer(layer, EntrySource(reader), source: path)
            }
        }
        if let layer = pending.values.first {
            throw .invalid("\(path): layer \(layer.member), named by the manifest, is not in the archive")
        }
    }

    /// The archive at `path` opened again when it is a plain tar ("ustar" at
    /// offset 257), with its size; nil otherwise.
    private static func openPlainTar(_ path: String) -> (fd: CInt, size: Int64)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var magic = [UInt8](repeating: 0, count: 5)
        var st = stat()
        guard pread(fd, &magic, 5, 257) == 5, magic == Array("ustar".utf8), fstat(fd, &st) == 0, isRegularFile(st) else {
            closeQuietly(fd)
            return nil
        }
        return (fd, Int64(st.st_size))
    }

    /// Unpacks one layer from `input` (an archive's member, or a layout's blob file).
    private func unpackLayer(_ layer: ImageArchive.Layer, _ input: ByteSource, source: String) throws(UrunError) {
        let (temporary, root) = try makeTemporary("layer-" + layer.diffID.prefix(12))
        defer { closeQuietly(root) }
        // A blob file (a layout's, a pull's) is decompressed and hashed by a
        // child beside the extraction; a member of an outer archive here.
        let child = try (input as? FileSource)?.decompressedByChild()
        let blob = HashingSource(input, hashing: child == nil)
        let blobDigest = { () throws(UrunError) -> String in
            if let child { return try child.finish() }
            return try blob.finish()
        }
        do throws(UrunError) {
            let plain: ByteSource
            if let child { plain = child } else { plain = try decompressed(blob, name: "\(source): \(layer.member)") }
            let uncompressed = HashingSource(plain)
            let tar = try TarReader(uncompressed, name: "\(source): \(layer.member)")
            var extractor = Extractor(root: root, rootPath: temporary, options: extractorOptions(whiteouts: true))
            try extractor.extract(from: tar, first: nil)
            let diffID = try uncompressed.finish()
            let blobDigest = try blobDigest()
            if let expected = layer.blobDigest, blobDigest != expected {
                throw .invalid("\(source): layer \(layer.member): sha256 is \(blobDigest), the manifest says \(expected)")
            }
            guard diffID == layer.diffID else {
                throw .invalid("\(source): layer \(layer.member): its content hashes to sha256:\(diffID), the image configuration says sha256:\(layer.diffID)")
            }
            report(extractor, name: "\(source): \(layer.member)")
            try install(temporary, as: layer.diffID, size: extractor.bytesWritten)
        } catch {
            try? removeTree(temporary)
            // A damaged layer is reported as what it is: not the blob the manifest names.
            if let expected = layer.blobDigest, let actual = try? blobDigest(), actual != expected {
                throw .invalid("\(source): layer \(layer.member): sha256 is \(actual), the manifest says \(expected)")
            }
            throw error
        }
    }

    private func extractorOptions(whiteouts: Bool) -> Extractor.Options {
        // Inside a user namespace (subordinate ids) owners are restored;
        // device nodes need real root.
        Extractor.Options(owners: getuid() == 0, devices: getuid() == 0 && mapping == nil, whiteouts: whiteouts)
    }

    /// A new directory under tmp/, flock'd through the descriptor returned: a
    /// later unpack removes it only once that is closed (its maker gone).
    public func makeTemporary(_ label: String) throws(UrunError) -> (String, CInt) {
        let temporary = directory + "/tmp/" + label + "." + randomHex(bytes: 6)
        try sys(.unpackImage, explain: "unpack into \(temporary)", path: temporary) { mkdir(temporary, 0o755) }
        let root = open(temporary, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0, flock(root, LOCK_EX | LOCK_NB) == 0 else {
            let error = UrunError.kernel(.unpackImage, path: temporary, .current)
            try? removeTree(temporary)
            throw error
        }
        return (temporary, root)
    }

    /// Moves a complete tree into layers/ (or drops it if the same layer arrived meanwhile).
    func install(_ temporary: String, as digest: String, size: UInt64) throws(UrunError) {
        let final = layersDirectory + "/" + layerName(digest)
        if rename(temporary, final) != 0 {
            guard errno == EEXIST || errno == ENOTEMPTY else { throw .kernel(.unpackImage, path: final, .current) }
            try removeTree(temporary)
        }
        try? writeFile(final + ".size", "\(size)\n")
    }

    /// tmp/ entries of unpacks that were killed: an unpack holds its
    /// directory's flock, so one whose lock is free has no unpacker left.
    func removeLeftovers() {
        let tmp = directory + "/tmp"
        for name in (try? directoryEntries(tmp)) ?? [] {
            let fd = open(tmp + "/" + name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { try? removeAsOwner(tmp + "/" + name) }
            closeQuietly(fd)
        }
    }

    private func report(_ extractor: Extractor, name: String) {
        if extractor.skippedDevices > 0 {
            writeQuietly(
                2,
                "urun: skipped \(extractor.skippedDevices) device node\(extractor.skippedDevices == 1 ? "" : "s") in \(baseName(of: name)) that an unprivileged user cannot create (a container's /dev is provided at run time)\n"
            )
        }
        if extractor.unmappedOwners > 0 {
            writeQuietly(2, "urun: \(extractor.unmappedOwners) files in \(baseName(of: name)) belong to ids beyond your subordinate range; they belong to root inside\n")
        }
    }

    func save(_ record: ImageRecord) throws(UrunError) {
        var merged = record
        if let existing = ImageRecord.read(recordPath(record.id)) {
            merged.names = existing.names + record.names.filter { !existing.names.contains($0) }
        }
        try update(merged)
    }
}

/// An archive file's bytes, hashed on the way (a rootfs tarball's layer is
/// named by the file's sha256): a compressed one decompressed by a child
/// process beside urun when there is a core for it (DecompressorProcess),
/// else read and decompressed here.
struct ArchiveInput {
    /// The plain tar.
    let source: ByteSource
    /// Whether that is the file itself, not decompressed.
    let isPlain: Bool
    /// The sha256 of the file, once it was all read and decompressed (a
    /// checksum at the end of the compressed data is checked then).
    let digest: () throws(UrunError) -> String

    /// `hashing`: whether the file's own digest is wanted (a rootfs tarball is named by it).
    init(_ path: String, meter: ProgressMeter, hashing: Bool = true) throws(UrunError) {
        if let process = try DecompressorProcess.start(path) {
            process.onProgress = { meter.update($0) }
            source = process
            isPlain = false
            digest = { () throws(UrunError) in try process.finish() }
        } else {
            let counted = HashingSource(try FileSource(path: path), hashing: hashing)
            counted.onProgress = { meter.update($0) }
            let plain = try decompressed(counted, name: path)
            source = plain
            isPlain = plain is PeekedSource  // what `decompressed` hands back uncompressed
            digest = { () throws(UrunError) in
                while try !plain.next().isEmpty {}
                return try counted.finish()
            }
        }
    }
}

/// A one-line progress display on a terminal, for archives large enough to
/// take a noticeable time.
final class ProgressMeter {
    private let label: String
    private let total: UInt64
    private let enabled: Bool
    private var shownPercent = -1
    private var visible = false

    init(label: String, total: UInt64, enabled: Bool) {
        self.label = label
        self.total = total
        self.enabled = enabled && total >= 16 << 20 && isatty(2) == 1
    }

    func update(_ done: UInt64) {
        guard enabled, total > 0 else { return }
        let percent = Int(min(done, total) * 100 / total)
        guard percent != shownPercent else { return }
        shownPercent = percent
        visible = true
        writeQuietly(2, "\rurun: unpacking \(label) \(percent)% of \(total >> 20) MiB")
    }

    func finish() {
        guard visible else { return }
        visible = false
        writeQuietly(2, "\r\u{1B}[K")
    }
}
