import CUrunSyscalls
import Glibc

/// Copies one directory tree into another, bottom layer first when called
/// once per layer: files, symlinks and FIFOs with their owners (where
/// `keepsOwners`), modes and times; an overlay whiteout (a 0:0 character
/// device) or opaque directory in the source deletes what the destination
/// has by that name. Used to flatten an image's layers and to fill a new
/// named volume from the image.
///
/// The source is walked with `TreeWalk` and the destination in step with it:
/// one descriptor on each side however deep the tree, every name handled as
/// bytes, each climb back up checked to land where it came from.
public struct TreeMerge {
    /// The step its errors name.
    public let step: Step
    /// chown to the source's owners (root in the user namespace); otherwise
    /// the copies are the caller's.
    public let keepsOwners: Bool

    public init(step: Step, keepsOwners: Bool = getuid() == 0) {
        self.step = step
        self.keepsOwners = keepsOwners
    }

    /// Merges the tree `source` into the tree `destination`; `size` grows by
    /// the bytes of file data copied.
    public func merge(_ source: CInt, display: String, into destination: CInt, size: inout UInt64) throws(UrunError) {
        var target = urun_dup_cloexec(destination)
        guard target >= 0 else { throw .kernel(step, path: display, .current) }
        defer { closeQuietly(target) }
        // The destination directories entered, to climb back with a check.
        var identities: [(dev_t, ino_t)] = [try identity(target, display)]
        var total = size
        defer { size = total }

        try TreeWalk().run(
            source, display: display,
            visit: { (directory, entry) throws(UrunError) in
                let shown = display + "/…/" + entry.printableName
                var st = stat()
                guard entry.withCName({ fstatat(directory, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else {
                    throw .kernel(step, path: shown, .current)
                }
                var existing = stat()
                let exists = entry.withCName { fstatat(target, $0, &existing, AT_SYMLINK_NOFOLLOW) } == 0
                switch st.st_mode & S_IFMT {
                case S_IFCHR where st.st_rdev == 0:  // a whiteout: the name is gone from here on
                    if exists { try removeEntry(entry, in: target, display: shown) }
                    return false
                case S_IFDIR:
                    if exists && (!isDirectory(existing) || isOpaque(directory, entry)) {
                        try removeEntry(entry, in: target, display: shown)
                    } else if exists && existing.st_mode & 0o700 != 0o700 {
                        // A lower layer's read-only directory: writable while this layer
                        // merges into it; `leave` then gives it this layer's mode.
                        _ = entry.withCName { fchmodat(target, $0, (existing.st_mode & 0o7777) | 0o700, 0) }
                    }
                    if entry.withCName({ mkdirat(target, $0, 0o700) }) != 0 && errno != EEXIST {
                        throw .kernel(step, path: shown, .current)
                    }
                    return true
                default:
                    if exists { try removeEntry(entry, in: target, display: shown) }
                    total += try copy(entry, st, from: directory, to: target, shown: shown)
                    try copyAttributes(st, to: target, entry, shown: shown)
                    return false
                }
            },
            enter: { (_, entry) throws(UrunError) in
                let child = entry.withCName { openat(target, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                guard child >= 0 else { throw .kernel(step, path: display + "/…/" + entry.printableName, .current) }
                closeQuietly(target)
                target = child
                identities.append(try identity(target, display))
            },
            leave: { (directory, entry) throws(UrunError) in
                identities.removeLast()
                let up = openat(target, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard up >= 0, let expected = identities.last, let actual = try? identity(up, display), actual == expected else {
                    if up >= 0 { closeQuietly(up) }
                    throw .invalid("\(display): the tree copied into changed while it was copied")
                }
                closeQuietly(target)
                target = up
                var st = stat()
                guard entry.withCName({ fstatat(directory, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else {
                    throw .kernel(step, path: display + "/…/" + entry.printableName, .current)
                }
                try copyAttributes(st, to: target, entry, shown: display + "/…/" + entry.printableName)
            })
    }

    /// Copies a file, symlink or FIFO; returns the bytes of file data copied.
    private func copy(_ entry: DirectoryEntry, _ st: stat, from source: CInt, to target: CInt, shown: String)
        throws(UrunError) -> UInt64
    {
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            let input = try sys(step, path: shown) {
                entry.withCName { openat(source, $0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
            }
            defer { closeQuietly(input) }
            let output = try sys(step, path: shown) {
                entry.withCName { openat(target, $0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
            }
            defer { closeQuietly(output) }
            var left = Int(st.st_size)
            while left > 0 {
                let n = urun_copy_file_range(input, output, left)
                guard n > 0 else { throw .kernel(step, path: shown, n == 0 ? .ioError : .current) }
                left -= n
            }
            return UInt64(st.st_size)
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = entry.withCName { readlinkat(source, $0, &buffer, buffer.count - 1) }
            guard n >= 0 else { throw .kernel(step, path: shown, .current) }
            buffer[n] = 0
            try sys(step, path: shown) { entry.withCName { symlinkat(buffer, target, $0) } }
        case S_IFIFO:
            try sys(step, path: shown) { entry.withCName { mkfifoat(target, $0, st.st_mode & 0o7777) } }
        default:
            break  // device nodes: never in an unprivileged user's layers
        }
        return 0
    }

    private func copyAttributes(_ st: stat, to directory: CInt, _ entry: DirectoryEntry, shown: String) throws(UrunError) {
        // Owner before mode: chown(2) clears set-user-ID bits.
        if keepsOwners { _ = entry.withCName { fchownat(directory, $0, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) } }
        guard st.st_mode & S_IFMT != S_IFLNK else { return }
        try sys(step, path: shown) { entry.withCName { fchmodat(directory, $0, st.st_mode & 0o7777, 0) } }
        var times = [st.st_atim, st.st_mtim]
        _ = entry.withCName { utimensat(directory, $0, &times, AT_SYMLINK_NOFOLLOW) }
    }

    private func isOpaque(_ directory: CInt, _ entry: DirectoryEntry) -> Bool {
        let fd = entry.withCName { openat(directory, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { return false }
        defer { closeQuietly(fd) }
        var value: UInt8 = 0
        return urun_fgetxattr(fd, "user.overlay.opaque", &value, 1) == 1 && value == UInt8(ascii: "y")
    }

    private func identity(_ fd: CInt, _ display: String) throws(UrunError) -> (dev_t, ino_t) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .kernel(step, path: display, .current) }
        return (st.st_dev, st.st_ino)
    }
}
