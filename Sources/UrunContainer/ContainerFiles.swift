import CUrunSyscalls
import Glibc
import UrunImage
import UrunKernel
import UrunRootfs
import UrunUserNS

/// A kept container's files from outside it: `commit`, `export` and `cp`.
///
/// Its root is reached from a child process that is root of the container's
/// user namespace, so owners read and write as the container sees them:
/// a running container's own mount namespace is joined (setns through a
/// pidfd of its PID 1, or under --init of PID 2); a stopped one's overlay is
/// mounted again, in a mount namespace of the child's own, while the
/// container's directory lock keeps it from starting meanwhile. Paths inside
/// are resolved in its root (openat2 RESOLVE_IN_ROOT): a symlink, absolute
/// or with "..", never leads out of the container.
public struct ContainerFiles {
    public let containers: Containers
    public let record: ContainerRecord

    public init(_ containers: Containers, _ record: ContainerRecord) {
        self.containers = containers
        self.record = record
    }

    private var store: ContainerStore { containers.store }
    private var directory: ContainerDirectory { ContainerDirectory(in: store.dataDirectory, id: record.id) }

    /// Runs `body` with a descriptor of the container's root directory, in a
    /// child in the container's user namespace.
    func withRoot(_ body: (CInt) throws(UrunError) -> Void) throws(UrunError) {
        let lock = try store.lockVerbs(record.id)
        defer { closeQuietly(lock) }
        let status = store.state(record.id).status
        if status.isUp {
            let running = try RunningContainer.open(record, store: store)
            defer { running.close() }
            try runJoining([NamespaceEntry(fd: running.pidfd, flags: CInt(URUN_CLONE_NEWUSER | URUN_CLONE_NEWNS))]) { () throws(UrunError) in
                let root = try sys(.readFile, path: "/") { open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
                defer { closeQuietly(root) }
                try body(root)
            }
            return
        }
        // Stopped: its directory's lock keeps a start out while the overlay is mounted here.
        let container = directory
        try container.acquire()
        defer { container.release() }
        let image = try Monitor.image(for: record, cache: store.paths.cache)
        let mountpoint = container.path + "/mnt"
        if fileStatus(mountpoint) == nil { try sys(.makeMountpoint, path: mountpoint) { mkdir(mountpoint, 0o700) } }
        let lower = image.layerPaths.map(escapeOverlayPath).joined(separator: ":")
        let data = "lowerdir=\(lower),upperdir=\(escapeOverlayPath(container.upper)),workdir=\(escapeOverlayPath(container.work)),userxattr"
        let idMap = try record.spec.subordinateMapping() ?? IDMap.single(hostUID: getuid(), hostGID: getgid())
        try runInUserNamespace(idMap, also: .mount) { () throws(UrunError) in
            try sys(.makeRootPrivate) { mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) }
            try sys(.mountOverlay, path: mountpoint) { mount("overlay", mountpoint, "overlay", 0, data) }
            let root = try sys(.readFile, path: mountpoint) { open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            defer { closeQuietly(root) }
            try body(root)
        }
    }

    // MARK: commit

    /// `urun commit`: the container's writes (its overlay's upper directory)
    /// become a layer on top of its image's, with the image's configuration
    /// changed as `changes` say and a history entry; the image goes into the
    /// cache under `name` (none: an image known by its id). A running
    /// container is paused meanwhile, as docker does, unless told not to.
    public func commit(name: String?, changes: [String], message: String?, author: String?, pause: Bool) throws(UrunError) -> Image {
        let images = ImageStore(directory: store.paths.cache, mapping: try record.spec.subordinateMapping())
        guard record.rootfsDirectory == nil, let parentID = record.imageID, let parent = ImageRecord.read(images.recordPath(parentID)) else {
            throw .invalid("container \(record.name) runs a directory, not an image of the cache: make an image of the directory first (tar it, then urun import)")
        }
        var check = ImageConfig()
        for change in changes { try check.apply(change: change) }  // a bad --change fails before any work
        var paused = false
        if pause && store.state(record.id).status == .running {
            do {
                try containers.setPaused(record, true)
                paused = true
            } catch {
                writeQuietly(2, "urun: \(printableMessage(error.description)); committing \(record.name) while it runs\n")
            }
        }
        defer { if paused { try? containers.setPaused(record, false) } }
        let base = try images.blobs(of: parent)
        let written = try images.writeLayer(from: directory.upper)
        if paused {
            try? containers.setPaused(record, false)
            paused = false
        }
        var config = base.config
        for change in changes { try config.apply(change: change) }
        let now = Timestamp.now().rfc3339
        if config.history.isEmpty { config.history = base.layers.map { _ in JSON.object([("created_by", .string(""))]) } }
        var entry = JSON.object([("created", .string(now)), ("created_by", .string("urun commit \(record.name)"))])
        if let message { entry["comment"] = .string(message) }
        if let author { entry["author"] = .string(author) }
        config.history.append(entry)
        config.created = now
        config.diffIDs = base.layers.map(\.diffID) + [written.diffID]
        let layer = ImageBlobs.Layer(hex: written.digest, size: written.size, mediaType: ImageBlobs.layerType, diffID: written.diffID)
        let blobs = try images.store(config: config, layers: base.layers + [layer])
        let (layout, lock) = try images.makeTemporary("commit")
        defer {
            try? removeTree(layout)
            closeQuietly(lock)
        }
        try images.writeLayout([(blobs, name.map { [$0] } ?? [])], into: layout)
        return try images.importLayout(layout, name: name, source: "commit:" + record.id, platform: nil, showProgress: false)
    }

    // MARK: export

    /// `urun export`: the container's whole file system, flattened, as a tar
    /// on `output` (what `urun import` makes an image of again). Other mounts
    /// (/proc, /dev, volumes) are not in it.
    public func export(to output: CInt) throws(UrunError) {
        try withRoot { (root) throws(UrunError) in
            _ = try LayerWriter(form: .tree, gzip: false).write(root, display: record.name, to: output)
        }
    }

    // MARK: cp

    /// `urun cp CONTAINER:SOURCE DESTINATION`, as docker's: into DESTINATION when it
    /// is a directory, else as DESTINATION. Files come out as the caller's.
    public func copyOut(_ source: String, to destination: String) throws(UrunError) {
        guard source.hasPrefix("/") else { throw .usage("\(record.name):\(printable(source)): give an absolute path in the container") }
        let (parent, name) = try Self.split(source, what: "the source")
        let (directory, final) = try Self.target(for: name, at: try UrunPaths.absolute(destination)) { path in
            fileStatus(path, followLinks: true).map(isDirectory) ?? false
        }
        let (tarFile, tar, lock) = try temporaryTar()
        defer { cleanUp(tarFile, tar, lock) }
        try withRoot { (root) throws(UrunError) in
            let from = try Self.openInRoot(root, parent, display: "\(record.name):\(parent)")
            defer { closeQuietly(from) }
            try TreeCopy.write(Array(name.utf8), in: from, as: Array(final.utf8), display: "\(record.name):\(source)", to: tar) { _, _ in (0, 0) }
        }
        let fd = try sys(.writeFile, path: directory) { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { closeQuietly(fd) }
        try TreeCopy.extract(tar, into: fd, display: directory, owners: false)
    }

    /// `urun cp SOURCE CONTAINER:DESTINATION`: the host's file or directory,
    /// owned by the container's root (as docker copies in).
    public func copyIn(_ source: String, to destination: String) throws(UrunError) {
        guard destination.hasPrefix("/") else { throw .usage("\(record.name):\(printable(destination)): give an absolute path in the container") }
        let (hostParent, name) = try Self.split(try UrunPaths.absolute(source), what: "the source")
        let (tarFile, tar, lock) = try temporaryTar()
        defer { cleanUp(tarFile, tar, lock) }
        let from = try sys(.readFile, path: hostParent) { open(hostParent, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { closeQuietly(from) }
        try TreeCopy.write(Array(name.utf8), in: from, as: Array(name.utf8), display: source, to: tar) { _, _ in (0, 0) }
        let shown = "\(record.name):\(destination)"
        try withRoot { (root) throws(UrunError) in
            let (directory, final) = try Self.target(for: name, at: destination) { path in
                guard let fd = try? Self.openInRoot(root, path, display: path) else { return false }
                closeQuietly(fd)
                return true
            }
            let into = try Self.openInRoot(root, directory, display: shown)
            defer { closeQuietly(into) }
            guard final != name else {
                try TreeCopy.extract(tar, into: into, display: shown, owners: true)
                return
            }
            // Renamed on the way: extracted beside the destination first, then moved onto it.
            let staging = ".urun-cp-" + randomHex(bytes: 6)
            try sys(.writeFile, path: shown) { mkdirat(into, staging, 0o700) }
            defer { unlinkat(into, staging, AT_REMOVEDIR) }
            let stagingFD = try sys(.writeFile, path: shown) { openat(into, staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            defer { closeQuietly(stagingFD) }
            try TreeCopy.extract(tar, into: stagingFD, display: shown, owners: true)
            try sys(.writeFile, path: shown) { renameat(stagingFD, name, into, final) }
        }
    }

    /// The directory a copy named `name` is extracted in, and the name it
    /// ends up with: inside `destination` when that is a directory, else
    /// `destination` itself (its parent must be a directory).
    static func target(for name: String, at destination: String, isDirectory: (String) -> Bool) throws(UrunError) -> (String, String) {
        if isDirectory(destination) { return (destination, name) }
        let (parent, final) = try split(destination, what: "the destination")
        guard isDirectory(parent) else { throw .invalid("\(printable(destination)): \(printable(parent)) is not a directory") }
        return (parent, final)
    }

    /// "dir/name" → ("dir", "name"); a trailing slash or "/." names the directory itself.
    static func split(_ path: String, what: String) throws(UrunError) -> (String, String) {
        var trimmed = path
        while trimmed.count > 1 && (trimmed.hasSuffix("/") || trimmed.hasSuffix("/.")) {
            trimmed = trimmed.hasSuffix("/.") ? String(trimmed.dropLast(2)) : String(trimmed.dropLast())
        }
        let name = baseName(of: trimmed)
        guard !name.isEmpty, name != "/", name != "..", name != "." else {
            throw .usage("\(printable(path)): \(what) must name a file or directory")
        }
        let parent = parentDirectory(of: trimmed.hasPrefix("/") ? trimmed : "./" + trimmed)
        return (parent.isEmpty ? "/" : parent, name)
    }

    /// A directory of the container, by its path inside, resolved in its root.
    static func openInRoot(_ root: CInt, _ path: String, display: String) throws(UrunError) -> CInt {
        let relative = path.hasPrefix("/") ? String(path.drop { $0 == "/" }) : path
        let fd = urun_openat2(
            root, relative.isEmpty ? "." : relative, UInt64(O_RDONLY | O_DIRECTORY | O_CLOEXEC), 0,
            UInt64(URUN_RESOLVE_IN_ROOT | URUN_RESOLVE_NO_MAGICLINKS))
        guard fd >= 0 else { throw .kernel(.readFile, path: display, .current) }
        return fd
    }

    private func temporaryTar() throws(UrunError) -> (String, CInt, CInt) {
        let images = ImageStore(directory: store.paths.cache, mapping: nil)
        try images.prepareDirectories()
        let (directory, lock) = try images.makeTemporary("cp")
        let file = directory + "/copy.tar"
        let fd = try sys(.writeFile, path: file) { open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
        chmod(directory, 0o755)
        return (file, fd, lock)
    }

    private func cleanUp(_ file: String, _ fd: CInt, _ lock: CInt) {
        closeQuietly(fd)
        try? removeTree(parentDirectory(of: file))
        closeQuietly(lock)
    }
}
