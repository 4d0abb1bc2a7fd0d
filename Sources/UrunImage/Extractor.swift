import CUrunArchive
import CUrunSyscalls
import Glibc
import UrunKernel

/// Writes the entries of an archive below one directory, treating the archive
/// as hostile:
/// - every parent directory is resolved *inside* the destination
///   (openat2 RESOLVE_IN_ROOT), so a symlink planted by an earlier entry, or
///   one pointing at `/`, can never lead a write outside it;
/// - the final component is created with O_EXCL|O_NOFOLLOW, never written
///   through an existing symlink;
/// - entries with a `..` component are refused; a leading `/` is dropped, as
///   GNU tar does;
/// - hard links may only name files inside the destination.
/// Names are handled as bytes: file names need not be UTF-8.
///
/// An image layer's whiteouts become overlayfs' own, which an unprivileged
/// user may create: `.wh.NAME` a 0/0 character device NAME (Linux 5.8),
/// `.wh..wh..opq` the xattr user.overlay.opaque=y on its directory (read by
/// an overlay mounted with `userxattr`).
struct Extractor {
    /// What the unpacking process may restore.
    struct Options {
        /// Owners of files: real root, or root of a user namespace with subordinate ids.
        var owners = getuid() == 0
        /// Device nodes: real root only.
        var devices = getuid() == 0
        /// Convert OCI whiteouts (image layers).
        var whiteouts = false
    }

    let root: CInt
    let rootPath: String
    let options: Options
    private var cachedParent: (path: [UInt8], fd: CInt)?
    private var directories: [(path: [UInt8], mode: mode_t, mtime: timespec)] = []
    /// Whiteouts made in this layer: a directory created at one of them
    /// replaces the lower one, so it is made opaque.
    private var whiteouts: Set<[UInt8]> = []
    private(set) var skippedDevices = 0
    private(set) var skippedSockets = 0
    private(set) var unmappedOwners = 0
    /// Bytes of file data written: the layer's size.
    private(set) var bytesWritten: UInt64 = 0

    init(root: CInt, rootPath: String, options: Options = Options()) {
        self.root = root
        self.rootPath = rootPath
        self.options = options
    }

    /// The archive's root entry ("./"), read by the caller before it knew what
    /// the archive was: its mode and time go to the tree's root at the end.
    mutating func restoreRoot(mode: mode_t, mtime: timespec) {
        directories.append(([UInt8(ascii: ".")], mode, mtime))
    }

    /// Extracts every entry, starting with `first` when the caller has read it already.
    mutating func extract(from reader: TarReader, first: OpaquePointer?) throws(UrunError) {
        defer { forgetParent() }
        if let first { try extract(first, reader) }
        while let entry = try reader.next() {
            try extract(entry, reader)
        }
        try finishDirectories()
    }

    private mutating func extract(_ entry: OpaquePointer, _ reader: TarReader) throws(UrunError) {
        guard let rawName = archive_entry_pathname(entry) else { return }
        let name = bytes(of: rawName)
        let parts = try components(name, display: name)
        guard let leaf = parts.last else {  // "./": the root itself
            if archive_entry_filetype(entry) == S_IFDIR {
                directories.append(([UInt8(ascii: ".")], archive_entry_perm(entry) & 0o7777, mtimeOf(entry)))
            }
            return
        }
        let parentPath = joined(parts.dropLast())
        let path = joined(parts[...])
        let parent = try openParent(parentPath)
        let mode = archive_entry_perm(entry) & 0o7777
        let mtime = mtimeOf(entry)
        if options.whiteouts && leaf.starts(with: Self.whiteoutPrefix) {
            try whiteout(leaf, parent: parent, parentPath: parentPath, name: name)
            return
        }

        if let link = archive_entry_hardlink(entry) {
            let target = try components(bytes(of: link), display: name)
            guard let targetLeaf = target.last else { throw invalid(name, "hard link to the root") }
            // Opened on its own: the cached descriptor is `parent`, still needed.
            let targetParent = try openDirectory(joined(target.dropLast()), display: name)
            defer { if targetParent != root { closeQuietly(targetParent) } }
            let targetName = cString(targetLeaf)
            try replacing(parent, leaf, name, path: path) { leafName in
                targetName.withUnsafeBufferPointer { linkat(targetParent, $0.baseAddress!, parent, leafName, 0) }
            }
            if archive_entry_size(entry) > 0 {
                try writeData(reader, into: parent, leaf, name, path: path, mode, mtime, replace: false, owner: nil)
            }
            return
        }

        switch archive_entry_filetype(entry) {
        case S_IFREG:
            try writeData(reader, into: parent, leaf, name, path: path, mode, mtime, replace: true, owner: try owner(entry, name))
        case S_IFDIR:
            try makeDirectory(parent, leaf, name, path: path)
            try own(entry, parent, leaf, name)
            if whiteouts.contains(path) { try setOpaque(parent, leaf, name) }
            directories.append((name, mode, mtime))
        case S_IFLNK:
            guard let target = archive_entry_symlink(entry) else { throw invalid(name, "symlink without a target") }
            try replacing(parent, leaf, name, path: path) { symlinkat(target, parent, $0) }
            try own(entry, parent, leaf, name)
            var times = [mtime, mtime]
            utimensat(parent, cString(leaf), &times, AT_SYMLINK_NOFOLLOW)
        case S_IFIFO:
            try replacing(parent, leaf, name, path: path) { mkfifoat(parent, $0, mode) }
            try own(entry, parent, leaf, name)
        case S_IFCHR, S_IFBLK:
            guard options.devices else {
                skippedDevices += 1
                return
            }
            guard let major = UInt32(exactly: archive_entry_rdevmajor(entry)),
                let minor = UInt32(exactly: archive_entry_rdevminor(entry))
            else { throw invalid(name, "a device number out of range") }
            let device = urun_makedev(major, minor)
            let type = archive_entry_filetype(entry)
            try replacing(parent, leaf, name, path: path) { mknodat(parent, $0, type | mode, device) }
            try own(entry, parent, leaf, name)
        default:
            skippedSockets += 1
        }
    }

    // MARK: files

    private mutating func writeData(
        _ reader: TarReader, into parent: CInt, _ leaf: [UInt8], _ name: [UInt8], path: [UInt8], _ mode: mode_t,
        _ mtime: timespec, replace: Bool, owner: (uid_t, gid_t)?
    ) throws(UrunError) {
        var fd: CInt = -1
        if replace {
            try replacing(parent, leaf, name, path: path) { leafName in
                fd = openat(parent, leafName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                return fd
            }
        } else {
            fd = try sys(.unpackImage, path: display(name)) {
                openat(parent, cString(leaf), O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
            }
        }
        defer { closeQuietly(fd) }
        var end: Int64 = 0
        try reader.readData { (block, offset) throws(UrunError) in
            // A sparse map's offsets come from the archive: checked before any arithmetic.
            guard offset >= 0, offset <= Int64.max - Int64(block.count) else {
                throw invalid(name, "a data offset out of range")
            }
            var written = 0
            while written < block.count {
                let n = pwrite(fd, block.baseAddress! + written, block.count - written, Int(offset) + written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .kernel(.unpackImage, path: display(name), .current)
                }
                written += n
            }
            end = max(end, offset + Int64(block.count))
            bytesWritten += UInt64(block.count)
        }
        // A sparse file may end in a hole that no block covers.
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_size < end { ftruncate(fd, Int(end)) }
        // Owner before mode: chown(2) clears set-user-ID bits.
        if let owner { fchown(fd, owner.0, owner.1) }
        try sys(.unpackImage, path: display(name)) { fchmod(fd, mode) }
        var times = [mtime, mtime]
        futimens(fd, &times)
    }

    private mutating func makeDirectory(_ parent: CInt, _ leaf: [UInt8], _ name: [UInt8], path: [UInt8]) throws(UrunError) {
        let c = cString(leaf)
        if mkdirat(parent, c, 0o700) == 0 { return }
        guard errno == EEXIST else { throw .kernel(.unpackImage, path: display(name), .current) }
        var st = stat()
        if fstatat(parent, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mode & S_IFMT == S_IFDIR { return }
        // Something else stands there (a file, a symlink): a directory replaces it, as tar does.
        try replacing(parent, leaf, name, path: path) { mkdirat(parent, $0, 0o700) }
    }

    /// Runs `create`; if the name exists, removes it (an empty directory
    /// included) and tries once more, as tar replaces earlier members.
    /// `path` is the entry's path below the root.
    private mutating func replacing(
        _ parent: CInt, _ leaf: [UInt8], _ name: [UInt8], path: [UInt8],
        _ create: (UnsafePointer<CChar>) -> CInt
    ) throws(UrunError) {
        let c = cString(leaf)
        try c.withUnsafeBufferPointer { (pointer) throws(UrunError) in
            let leafName = pointer.baseAddress!
            if create(leafName) >= 0 { return }
            guard errno == EEXIST else { throw .kernel(.unpackImage, path: display(name), .current) }
            if unlinkat(parent, leafName, 0) != 0 {
                guard errno == EISDIR, unlinkat(parent, leafName, AT_REMOVEDIR) == 0 else {
                    throw .kernel(.unpackImage, path: display(name), .current)
                }
            }
            // A replaced directory or symlink changes what paths through it
            // resolve to: a cached descriptor below it is stale. `parent`
            // itself is not below it and stays open.
            if let cached = cachedParent, cached.path == path || cached.path.starts(with: path + [UInt8(ascii: "/")]) {
                forgetParent()
            }
            if create(leafName) < 0 { throw .kernel(.unpackImage, path: display(name), .current) }
        }
    }

    /// The owner to restore, when this process can give files away. The ids
    /// come from the archive (a PAX header may say anything): beyond 32 bits,
    /// negative, or (uid_t)-1, which chown(2) reads as "leave it", they are refused.
    private func owner(_ entry: OpaquePointer, _ name: [UInt8]) throws(UrunError) -> (uid_t, gid_t)? {
        guard options.owners else { return nil }
        let uid = archive_entry_uid(entry)
        let gid = archive_entry_gid(entry)
        guard let u = uid_t(exactly: uid), u != uid_t.max, let g = gid_t(exactly: gid), g != gid_t.max else {
            throw invalid(name, "owner \(uid):\(gid) is out of range (0 to \(uid_t.max - 1))")
        }
        return (u, g)
    }

    private mutating func own(_ entry: OpaquePointer, _ parent: CInt, _ leaf: [UInt8], _ name: [UInt8]) throws(UrunError) {
        guard let (uid, gid) = try owner(entry, name) else { return }
        // EINVAL: an id beyond the subordinate range; the file stays root's.
        if fchownat(parent, cString(leaf), uid, gid, AT_SYMLINK_NOFOLLOW) != 0 && errno == EINVAL { unmappedOwners += 1 }
    }

    // MARK: whiteouts

    static let whiteoutPrefix = Array(".wh.".utf8)
    static let opaqueMarker = Array(".wh..wh..opq".utf8)

    private mutating func whiteout(_ leaf: [UInt8], parent: CInt, parentPath: [UInt8], name: [UInt8]) throws(UrunError) {
        if leaf == Self.opaqueMarker { return try setOpaque(parent, [UInt8(ascii: ".")], name) }
        let hidden = Array(leaf.dropFirst(Self.whiteoutPrefix.count))
        guard !hidden.isEmpty, hidden != [UInt8(ascii: ".")], hidden != [UInt8(ascii: "."), UInt8(ascii: ".")],
            !hidden.starts(with: Self.whiteoutPrefix)
        else { throw invalid(name, "a whiteout may only hide a name in its own directory") }
        let path = parentPath.isEmpty ? hidden : parentPath + [UInt8(ascii: "/")] + hidden
        try replacing(parent, hidden, name, path: path) { mknodat(parent, $0, S_IFCHR, 0) }
        whiteouts.insert(path)
    }

    /// Marks a directory opaque: the overlay shows none of the lower layers' entries in it.
    private func setOpaque(_ parent: CInt, _ leaf: [UInt8], _ name: [UInt8]) throws(UrunError) {
        let fd = openat(parent, cString(leaf), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .kernel(.unpackImage, path: display(name), .current) }
        defer { closeQuietly(fd) }
        try sys(.unpackImage, path: display(name)) { urun_fsetxattr(fd, "user.overlay.opaque", "y", 1) }
    }

    /// Directory modes and times are set last, deepest first: a read-only
    /// directory must not block the entries extracted into it, and writing
    /// into a directory changes its mtime.
    private mutating func finishDirectories() throws(UrunError) {
        for directory in directories.sorted(by: { depth($0.path) > depth($1.path) }) {
            let fd = cString(directory.path).withUnsafeBufferPointer { path in
                urun_openat2(
                    root, path.baseAddress!, UInt64(O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), 0,
                    UInt64(URUN_RESOLVE_IN_ROOT | URUN_RESOLVE_NO_MAGICLINKS))
            }
            guard fd >= 0 else { continue }  // replaced by a later member
            fchmod(fd, directory.mode)
            var times = [directory.mtime, directory.mtime]
            futimens(fd, &times)
            closeQuietly(fd)
        }
    }

    // MARK: parents

    /// The directory `path` below the root, resolved inside it, created if
    /// missing. The last one is kept: archives list a directory's files together.
    private mutating func openParent(_ path: [UInt8]) throws(UrunError) -> CInt {
        if path.isEmpty { return root }
        if let cached = cachedParent, cached.path == path { return cached.fd }
        var fd = openBelowRoot(path)
        if fd < 0 && errno == ENOENT {
            // Missing parents (archives need not list directories): created by
            // the same in-root walk that mounts use, so a symlink among them
            // still resolves inside the image.
            fd = try openInRoot(root, bytes: path, create: .directory, step: .unpackImage)
        }
        guard fd >= 0 else { throw .kernel(.unpackImage, path: display(path), .current) }
        forgetParent()
        cachedParent = (path, fd)
        return fd
    }

    /// An existing directory below the root, resolved inside it, opened apart
    /// from the cache (the caller closes it unless it is `root`).
    private func openDirectory(_ path: [UInt8], display name: [UInt8]) throws(UrunError) -> CInt {
        if path.isEmpty { return root }
        let fd = openBelowRoot(path)
        guard fd >= 0 else { throw .kernel(.unpackImage, path: display(name), .current) }
        return fd
    }

    private func openBelowRoot(_ path: [UInt8]) -> CInt {
        cString(path).withUnsafeBufferPointer { pointer in
            urun_openat2(
                root, pointer.baseAddress!, UInt64(CInt(URUN_O_PATH) | O_DIRECTORY | O_CLOEXEC), 0,
                UInt64(URUN_RESOLVE_IN_ROOT | URUN_RESOLVE_NO_MAGICLINKS))
        }
    }

    private mutating func forgetParent() {
        if let cached = cachedParent { closeQuietly(cached.fd) }
        cachedParent = nil
    }

    // MARK: names as bytes

    /// Splits a member name into components: drops a leading "/", "." and
    /// empty parts; refuses "..".
    private func components(_ name: [UInt8], display shown: [UInt8]) throws(UrunError) -> [[UInt8]] {
        var parts: [[UInt8]] = []
        for part in name.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.elementsEqual([UInt8(ascii: ".")]) { continue }
            if part.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                throw invalid(shown, "a path with '..' would leave the image")
            }
            parts.append(Array(part))
        }
        return parts
    }

    private func invalid(_ name: [UInt8], _ reason: String) -> UrunError {
        .invalid("refusing archive member '\(display(name))': \(reason)")
    }

    private func joined(_ parts: ArraySlice<[UInt8]>) -> [UInt8] {
        Array(parts.joined(separator: [UInt8(ascii: "/")]))
    }

    private func depth(_ path: [UInt8]) -> Int { path.lazy.filter { $0 == UInt8(ascii: "/") }.count }
}

private func mtimeOf(_ entry: OpaquePointer) -> timespec {
    timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: archive_entry_mtime_nsec(entry))
}

private func bytes(of pointer: UnsafePointer<CChar>) -> [UInt8] {
    Array(UnsafeBufferPointer(start: pointer, count: strlen(pointer))).map { UInt8(bitPattern: $0) }
}

private func cString(_ bytes: [UInt8]) -> [CChar] {
    bytes.map { CChar(bitPattern: $0) } + [0]
}

private func display(_ bytes: [UInt8]) -> String { printable(bytes) }
