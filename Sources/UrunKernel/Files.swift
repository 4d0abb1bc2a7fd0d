import CUrunSyscalls
import Glibc
import SystemPackage

/// Reads a whole file (small files: configs, /proc entries).
public func readFile(_ path: String, at dirfd: CInt = AT_FDCWD) throws(UrunError) -> [UInt8] {
    let flags = dirfd == AT_FDCWD ? O_RDONLY | O_CLOEXEC : O_RDONLY | O_CLOEXEC | O_NOFOLLOW
    let fd = try sys(.readFile, path: path) { urun_openat_mode(dirfd, path, flags, 0) }
    defer { closeQuietly(fd) }
    return try readAll(fd, path: path)
}

/// Reads until end of file.
public func readAll(_ fd: CInt, path: String? = nil) throws(UrunError) -> [UInt8] {
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw .kernel(.readFile, path: path, .current)
        }
        if n == 0 { return result }
        result.append(contentsOf: chunk[0..<n])
    }
}

public func readText(_ path: String, at dirfd: CInt = AT_FDCWD) throws(UrunError) -> String {
    String(decoding: try readFile(path, at: dirfd), as: UTF8.self)
}

/// Writes a file in place (proc files, new files).
public func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644, flags: CInt = O_CREAT | O_TRUNC)
    throws(UrunError)
{
    let fd = try sys(.writeFile, path: path) { urun_open_mode(path, O_WRONLY | O_CLOEXEC | flags, mode) }
    defer { closeQuietly(fd) }
    try writeAll(fd, text, path: path)
}

/// Replaces a file atomically: readers see the old or the new content, never half.
public func writeFileAtomically(_ path: String, _ text: String, mode: mode_t = 0o644) throws(UrunError) {
    let temporary = "\(path).tmp-\(getpid())"
    do {
        try writeFile(temporary, text, mode: mode, flags: O_CREAT | O_TRUNC | O_EXCL)
        try sys(.writeFile, path: path) { rename(temporary, path) }
    } catch {
        unlink(temporary)
        throw error
    }
}

/// lstat(2); nil when the path does not exist.
public func fileStatus(_ path: String, followLinks: Bool = false) -> stat? {
    var st = stat()
    let rc = followLinks ? stat(path, &st) : lstat(path, &st)
    return rc == 0 ? st : nil
}

public func isDirectory(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFDIR }
public func isRegularFile(_ st: stat) -> Bool { st.st_mode & S_IFMT == S_IFREG }

/// mkdir -p with `mode` for each directory created.
public func makeDirectories(_ path: String, mode: mode_t = 0o700, step: Step = .createContainerDir)
    throws(UrunError)
{
    if mkdir(path, mode) == 0 || errno == EEXIST { return }
    guard errno == ENOENT else { throw .kernel(step, path: path, .current) }
    let parent = parentDirectory(of: path)
    if parent != path && !parent.isEmpty { try makeDirectories(parent, mode: mode, step: step) }
    if mkdir(path, mode) != 0 && errno != EEXIST { throw .kernel(step, path: path, .current) }
}

/// This program's own path (/proc/self/exe), for running urun again.
public func executablePath() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A new private directory `directory/prefixXXXXXX` (mkdtemp(3)).
public func makeTemporaryDirectory(in directory: String, prefix: String) throws(UrunError) -> String {
    var template = Array((directory + "/" + prefix + "XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else { throw .kernel(.createContainerDir, path: directory, .current) }
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

public func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}

public func baseName(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}

/// rm -rf that never follows symlinks and copes with what overlayfs and
/// images leave behind: directories without write or search permission.
/// A missing path is not an error.
public func removeTree(_ path: String) throws(UrunError) {
    let parent = parentDirectory(of: path)
    let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard parentFD >= 0 else {
        if errno == ENOENT { return }
        throw .kernel(.removeContainerDir, path: parent, .current)
    }
    defer { closeQuietly(parentFD) }
    try removeEntry(baseName(of: path), in: parentFD, isDirectory: nil, displayPath: path)
}

/// Removes everything inside the directory `dirfd`, leaving the directory.
public func removeContents(of dirfd: CInt, displayPath: String) throws(UrunError) {
    var madeWritable = false
    for entry in try directoryListing(dirfd, path: displayPath) {
        do throws(UrunError) {
            try removeEntry(entry.name, in: dirfd, isDirectory: entry.isDirectory, displayPath: displayPath + "/" + entry.name)
        } catch {
            // A directory without write permission (an image's 0555 /usr, say).
            guard !madeWritable, case .kernel(_, _, .permissionDenied) = error else { throw error }
            madeWritable = true
            fchmod(dirfd, 0o700)
            try removeEntry(entry.name, in: dirfd, isDirectory: entry.isDirectory, displayPath: displayPath + "/" + entry.name)
        }
    }
}

private func removeEntry(_ name: String, in dirfd: CInt, isDirectory: Bool?, displayPath: String) throws(UrunError) {
    if isDirectory != true {
        if unlinkat(dirfd, name, 0) == 0 || errno == ENOENT { return }
        guard errno == EISDIR || errno == EPERM else { throw .kernel(.removeContainerDir, path: displayPath, .current) }
    }
    if unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT { return }
    var fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    if fd < 0 && errno == EACCES {
        // A directory without search permission (overlayfs' work/work is mode 0).
        fchmodat(dirfd, name, 0o700, 0)
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    }
    guard fd >= 0 else {
        if errno == ENOENT { return }
        throw .kernel(.removeContainerDir, path: displayPath, .current)
    }
    defer { closeQuietly(fd) }
    try removeContents(of: fd, displayPath: displayPath)
    if unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT {
        throw .kernel(.removeContainerDir, path: displayPath, .current)
    }
}

/// An entry of a directory listing; `isDirectory` is nil when the file system does not say.
public struct DirectoryEntry: Sendable {
    public let name: String
    public let isDirectory: Bool?
}

/// The entries of a directory, without "." and "..", with their types when known.
public func directoryListing(_ dirfd: CInt, path: String) throws(UrunError) -> [DirectoryEntry] {
    let copy = urun_dup_cloexec(dirfd)
    guard copy >= 0, let dir = fdopendir(copy) else {
        closeQuietly(copy)
        throw .kernel(.readFile, path: path, .current)
    }
    defer { closedir(dir) }
    rewinddir(dir)
    var entries: [DirectoryEntry] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
            pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name == "." || name == ".." { continue }
        let type = entry.pointee.d_type
        entries.append(DirectoryEntry(name: name, isDirectory: type == UInt8(DT_UNKNOWN) ? nil : type == UInt8(DT_DIR)))
    }
    return entries
}

/// Names in a directory, without "." and "..".
public func directoryEntries(_ dirfd: CInt, path: String) throws(UrunError) -> [String] {
    try directoryListing(dirfd, path: path).map(\.name)
}

public func directoryEntries(_ path: String) throws(UrunError) -> [String] {
    let fd = try sys(.readFile, path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { closeQuietly(fd) }
    return try directoryEntries(fd, path: path)
}

extension String {
    public func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}

/// getenv as a Swift string.
public func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

/// Runs `body` with a NULL-terminated C array of C strings.
public func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
