import CUrunSyscalls
import Glibc
import SystemPackage

/// What any whole-file read may hold: configs, records, /proc entries, an
/// image's /etc/passwd. A file beyond it is an error, never a reason to eat memory.
public let readLimit = 16 << 20

/// Reads a whole file (small files: configs, /proc entries), at most `limit`
/// bytes. Only a regular file: opened without blocking, so a FIFO or a device
/// that an image or a container put where a file was expected (/etc/passwd)
/// is an error, never a hang.
public func readFile(_ path: String, at dirfd: CInt = AT_FDCWD, limit: Int = readLimit) throws(UrunError) -> [UInt8] {
    let flags = (dirfd == AT_FDCWD ? O_RDONLY | O_CLOEXEC : O_RDONLY | O_CLOEXEC | O_NOFOLLOW) | O_NONBLOCK | O_NOCTTY
    let fd = try sys(.readFile, path: path) { urun_openat_mode(dirfd, path, flags, 0) }
    defer { closeQuietly(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw .kernel(.readFile, path: path, .current) }
    guard isRegularFile(st) else { throw .invalid("\(printable(path)): not a regular file") }
    return try readAll(fd, path: path, limit: limit)
}

/// Reads until end of file; more than `limit` bytes is an error.
public func readAll(_ fd: CInt, path: String? = nil, limit: Int = readLimit) throws(UrunError) -> [UInt8] {
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, limit + 1 - result.count)) }
        if n < 0 {
            if errno == EINTR { continue }
            throw .kernel(.readFile, path: path, .current)
        }
        if n == 0 { return result }
        result.append(contentsOf: chunk[0..<n])
        if result.count > limit { throw .invalid("\(path ?? "input"): larger than \(humanLimit(limit)); urun reads at most that") }
    }
}

/// A file the user named (--env-file, a seccomp profile): a regular file or a
/// pipe (`--env-file <(...)`), at most `limit` bytes. A device or directory is
/// refused by name, and a FIFO that nothing writes to within `seconds` is an
/// error, not a hang.
public func readInputFile(_ path: String, what: String, limit: Int = 1 << 20, seconds: Int = 10) throws(UrunError) -> [UInt8] {
    let shown = "\(what) \(printable(path))"
    let fd = urun_open_mode(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0)
    guard fd >= 0 else { throw .invalid("\(shown): \(Errno.current.message)") }
    defer { closeQuietly(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw .invalid("\(shown): \(Errno.current.message)") }
    switch st.st_mode & S_IFMT {
    case S_IFREG:
        _ = urun_set_nonblock(fd, 0)
        guard st.st_size <= limit else { throw .invalid("\(shown): larger than \(humanLimit(limit)); urun reads at most that") }
        do {
            return try readAll(fd, path: shown, limit: limit)
        } catch {
            throw .invalid("\(shown): \(error)")
        }
    case S_IFIFO, S_IFSOCK:
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        let deadline = monotonicSeconds() + Double(seconds)
        while true {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = deadline - monotonicSeconds()
            guard left > 0, poll(&ready, 1, CInt(left * 1000)) != 0 else {
                throw .invalid("\(shown): nothing was written to it within \(seconds) seconds")
            }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .invalid("\(shown): \(Errno.current.message)")
            }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
            if result.count > limit { throw .invalid("\(shown): larger than \(humanLimit(limit)); urun reads at most that") }
        }
    case S_IFDIR:
        throw .invalid("\(shown): is a directory")
    default:
        throw .invalid("\(shown): not a regular file or a pipe")
    }
}

private func humanLimit(_ bytes: Int) -> String { bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB" }

/// Seconds on the monotonic clock, for deadlines.
public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
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

/// An entry of a directory listing. Its name is bytes, as the kernel keeps
/// it: any byte but "/" and NUL, not necessarily UTF-8, so every walk over a
/// container's or an image's files uses `bytes`, never a decoded string.
public struct DirectoryEntry: Sendable, Hashable {
    public let bytes: [UInt8]
    /// d_type: DT_DIR, DT_REG, ... or DT_UNKNOWN when the file system does not say.
    public let type: UInt8

    public init(bytes: [UInt8], type: UInt8) {
        self.bytes = bytes
        self.type = type
    }

    /// nil when the file system does not say.
    public var isDirectory: Bool? { type == UInt8(DT_UNKNOWN) ? nil : type == UInt8(DT_DIR) }
    /// The name decoded as UTF-8 (for urun's own names, which are ASCII).
    public var name: String { String(decoding: bytes, as: UTF8.self) }
    /// The name for a message: invalid bytes and control characters escaped.
    public var printableName: String { printable(bytes) }
    public var isValidUTF8: Bool { String(validating: bytes, as: UTF8.self) != nil }

    /// Runs `body` with the name as a C string.
    public func withCName<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        (bytes + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
        }
    }
}

/// The entries of a directory, without "." and "..", with their types when known.
public func directoryListing(_ dirfd: CInt, path: String) throws(UrunError) -> [DirectoryEntry] {
    try Listing(dirfd, display: path).entries
}

/// Names in one of urun's own directories, without "." and "..". A name that
/// is not UTF-8 was not made by urun and is left out.
public func directoryEntries(_ dirfd: CInt, path: String) throws(UrunError) -> [String] {
    try directoryListing(dirfd, path: path).filter(\.isValidUTF8).map(\.name)
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
