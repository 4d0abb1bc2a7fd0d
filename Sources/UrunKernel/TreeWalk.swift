import CUrunSyscalls
import Glibc

/// A depth-first walk over a directory tree that holds one descriptor of its
/// own however deep the tree is: it descends with openat(O_NOFOLLOW) and climbs
/// back through "..", checking that each climb lands on the directory it came
/// from (device and inode). A container can make a tree 30,000 directories deep;
/// a walk that kept a descriptor per level would die of EMFILE, one that built
/// paths of ENAMETOOLONG. Names are bytes (a file name need not be UTF-8), and
/// the walk never leaves the file system it starts on.
///
/// For each entry of a directory, `visit(directory, entry)` runs with the
/// directory's descriptor; returning true for a directory enters it: `enter`
/// runs with the new directory's descriptor, then its entries are visited, then
/// `leave(directory, entry)` runs back in the parent. Each directory's names are
/// read when it is entered, in one compact buffer.
public struct TreeWalk {
    public typealias Visit = (_ directory: CInt, _ entry: DirectoryEntry) throws(UrunError) -> Bool
    public typealias Hook = (_ directory: CInt, _ entry: DirectoryEntry) throws(UrunError) -> Void

    /// Opens a directory to enter; a hook may make an unsearchable one searchable first.
    public var open: (_ parent: CInt, _ entry: DirectoryEntry) -> CInt = { parent, entry in
        entry.withCName { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
    }

    /// Whether a directory that cannot be opened is passed over (sizes) rather than an error.
    public var skipsUnreadable = false

    public init() {}

    /// Walks the tree below the directory `root` (which stays open and
    /// unchanged); `display` names it in errors.
    public func run(
        _ root: CInt, display: String, visit: Visit, enter: Hook = { _, _ in }, leave: Hook = { _, _ in }
    ) throws(UrunError) {
        var rootStatus = stat()
        guard fstat(root, &rootStatus) == 0 else { throw .kernel(.readFile, path: display, .current) }
        var current = urun_dup_cloexec(root)
        guard current >= 0 else { throw .kernel(.readFile, path: display, .current) }
        defer { closeQuietly(current) }

        struct Level {
            let listing: Listing
            var next = 0
            /// The directory itself, as its parent listed it (nil: the root).
            let entry: DirectoryEntry?
            let device: dev_t
            let inode: ino_t
        }
        var levels = [
            Level(listing: try Listing(current, display: display), entry: nil, device: rootStatus.st_dev, inode: rootStatus.st_ino)
        ]
        while let level = levels.last {
            if level.next < level.listing.count {
                let entry = level.listing[level.next]
                levels[levels.count - 1].next += 1
                guard try visit(current, entry) else { continue }
                let child = open(current, entry)
                if child < 0 {
                    if errno == ENOENT || errno == ENOTDIR || skipsUnreadable { continue }  // gone, or not a directory after all
                    throw .kernel(.readFile, path: display + "/…/" + entry.printableName, .current)
                }
                var st = stat()
                guard fstat(child, &st) == 0, st.st_dev == rootStatus.st_dev else {
                    closeQuietly(child)
                    throw .invalid("\(display): \(entry.printableName) is on another file system; not entering it")
                }
                closeQuietly(current)
                current = child
                levels.append(Level(listing: try Listing(current, display: display), entry: entry, device: st.st_dev, inode: st.st_ino))
                try enter(current, entry)
            } else {
                levels.removeLast()
                guard let entry = level.entry, let parent = levels.last else { return }
                let up = openat(current, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                var st = stat()
                guard up >= 0, fstat(up, &st) == 0, st.st_dev == parent.device, st.st_ino == parent.inode else {
                    if up >= 0 { closeQuietly(up) }
                    throw .invalid("\(display): a directory was moved during the walk; try again")
                }
                closeQuietly(current)
                current = up
                try leave(current, entry)
            }
        }
    }
}

/// The names of one directory, read in one pass into one buffer: a directory
/// of a million files costs their bytes, not a million arrays.
struct Listing {
    private var bytes: [UInt8] = []
    private var ends: [Int] = []
    private var types: [UInt8] = []

    init(_ directory: CInt, display: String) throws(UrunError) {
        let copy = urun_dup_cloexec(directory)
        guard copy >= 0, let dir = fdopendir(copy) else {
            closeQuietly(copy)
            throw .kernel(.readFile, path: display, .current)
        }
        defer { closedir(dir) }
        rewinddir(dir)
        while let entry = readdir(dir) {
            let length = withUnsafePointer(to: &entry.pointee.d_name) { strlen(UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                let name = raw.prefix(length)
                if name.elementsEqual([0x2E]) || name.elementsEqual([0x2E, 0x2E]) { return }  // "." and ".."
                bytes.append(contentsOf: name)
                ends.append(bytes.count)
                types.append(entry.pointee.d_type)
            }
        }
    }

    var count: Int { ends.count }

    subscript(index: Int) -> DirectoryEntry {
        let start = index == 0 ? 0 : ends[index - 1]
        return DirectoryEntry(bytes: Array(bytes[start..<ends[index]]), type: types[index])
    }

    var entries: [DirectoryEntry] { (0..<count).map { self[$0] } }
}

/// rm -rf that never follows symlinks, works at any depth with a bounded
/// number of descriptors, takes names as bytes, and copes with what overlayfs
/// and images leave behind: directories without write or search permission.
/// A missing path is not an error.
public func removeTree(_ path: String) throws(UrunError) {
    let parent = parentDirectory(of: path)
    let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard parentFD >= 0 else {
        if errno == ENOENT { return }
        throw .kernel(.removeContainerDir, path: parent, .current)
    }
    defer { closeQuietly(parentFD) }
    try removeEntry(DirectoryEntry(bytes: Array(baseName(of: path).utf8), type: UInt8(DT_UNKNOWN)), in: parentFD, display: path)
}

/// Removes the entry `entry` of the directory `directory`, a whole tree if it is one.
/// `display` names the entry itself in errors.
public func removeEntry(_ entry: DirectoryEntry, in directory: CInt, display: String) throws(UrunError) {
    if try unlinkLeaf(entry, in: directory, shown: display) { return }
    let fd = try openForRemoval(directory, entry, shown: display)
    guard fd >= 0 else { return }
    defer { closeQuietly(fd) }
    try removeContents(of: fd, displayPath: display)
    try removeEmptyDirectory(entry, in: directory, shown: display)
}

/// Removes everything inside the directory `dirfd`, leaving the directory.
public func removeContents(of dirfd: CInt, displayPath: String) throws(UrunError) {
    var walk = TreeWalk()
    // Deep names are shown as DIR/…/NAME: a 30,000-deep path is no help in an error.
    func shown(_ entry: DirectoryEntry) -> String { displayPath + "/…/" + entry.printableName }
    walk.open = { parent, entry in (try? openForRemoval(parent, entry, shown: shown(entry))) ?? -1 }
    try walk.run(
        dirfd, display: displayPath,
        visit: { (directory, entry) throws(UrunError) in try !unlinkLeaf(entry, in: directory, shown: shown(entry)) },
        leave: { (directory, entry) throws(UrunError) in try removeEmptyDirectory(entry, in: directory, shown: shown(entry)) })
}

/// unlink(2) of anything but a directory; false when it is one (to be emptied first).
private func unlinkLeaf(_ entry: DirectoryEntry, in directory: CInt, shown: String) throws(UrunError) -> Bool {
    if entry.isDirectory == true { return false }
    for attempt in 0..<2 {
        if entry.withCName({ unlinkat(directory, $0, 0) }) == 0 || errno == ENOENT { return true }
        switch errno {
        case EISDIR, EPERM where entry.isDirectory == nil: return false  // Linux says EISDIR for a directory
        case EACCES where attempt == 0: fchmod(directory, 0o700)  // an image's read-only directory (0555 /usr)
        default: throw .kernel(.removeContainerDir, path: shown, .current)
        }
    }
    return false
}

/// The directory to empty, made readable and searchable first when it was not
/// (overlayfs' work/work is mode 0); -1 when it is already gone.
private func openForRemoval(_ parent: CInt, _ entry: DirectoryEntry, shown: String) throws(UrunError) -> CInt {
    var fd = entry.withCName { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
    if fd < 0 && errno == EACCES {
        _ = entry.withCName { fchmodat(parent, $0, 0o700, 0) }
        fd = entry.withCName { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
    }
    if fd < 0 && errno != ENOENT { throw .kernel(.removeContainerDir, path: shown, .current) }
    return fd
}

private func removeEmptyDirectory(_ entry: DirectoryEntry, in directory: CInt, shown: String) throws(UrunError) {
    for attempt in 0..<2 {
        if entry.withCName({ unlinkat(directory, $0, AT_REMOVEDIR) }) == 0 || errno == ENOENT { return }
        guard errno == EACCES, attempt == 0 else { break }
        fchmod(directory, 0o700)
    }
    throw .kernel(.removeContainerDir, path: shown, .current)
}
