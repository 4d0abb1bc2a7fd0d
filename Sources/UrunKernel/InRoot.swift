import CUrunSyscalls
import Glibc


/// What to create when a path inside the root does not exist yet.
public enum CreateKind: Sendable {
    case directory
    case file
}

/// Opens `path` *inside* the directory `root` as if `root` were `/`: `..`
/// stops at `root`, and symlinks, absolute or relative, resolve against
/// `root` too. An image's `/proc -> /etc` or `etc/resolv.conf -> /../../x`
/// can therefore never redirect a mount onto the host (the CVE-2021-30465
/// class). Missing components are created when `create` says so; creation
/// never follows a symlink (O_EXCL|O_NOFOLLOW).
///
/// This is the walk that openat2(RESOLVE_IN_ROOT) does in the kernel, done in
/// user space so that it can also create what is missing along the way.
/// Returns an O_PATH descriptor for the final component.
public func openInRoot(_ root: CInt, _ path: String, create: CreateKind? = nil, step: Step = .makeMountpoint)
    throws(UrunError) -> CInt
{
    try openInRoot(root, bytes: Array(path.utf8), create: create, step: step)
}

/// `openInRoot` for a path given as bytes: archive member names need not be UTF-8.
public func openInRoot(_ root: CInt, bytes path: [UInt8], create: CreateKind? = nil, step: Step = .makeMountpoint)
    throws(UrunError) -> CInt
{
    let shown = String(decoding: path, as: UTF8.self)
    var pending = pathComponents(path).reversed() as [[UInt8]]
    var directories: [CInt] = [try sys(step, path: shown) { urun_dup_cloexec(root) }]
    defer { directories.forEach(closeQuietly) }
    var symlinksFollowed = 0

    while let component = pending.popLast() {
        if component == [UInt8(ascii: ".")] { continue }
        if component == [UInt8(ascii: "."), UInt8(ascii: ".")] {
            if directories.count > 1 { closeQuietly(directories.removeLast()) }
            continue
        }
        let isLast = pending.isEmpty
        let dir = directories[directories.count - 1]
        let name = component.map { CChar(bitPattern: $0) } + [0]
        var st = stat()
        if fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            guard errno == ENOENT, let create else { throw .kernel(step, path: shown, .current) }
            if !isLast || create == .directory {
                if mkdirat(dir, name, 0o755) != 0 && errno != EEXIST { throw .kernel(step, path: shown, .current) }
            } else {
                let fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
                if fd < 0 && errno != EEXIST { throw .kernel(step, path: shown, .current) }
                closeQuietly(fd)
            }
            pending.append(component)  // look again: now it exists
            continue
        }
        if st.st_mode & S_IFMT == S_IFLNK {
            symlinksFollowed += 1
            guard symlinksFollowed <= 40 else { throw .kernel(step, path: shown, .tooManySymbolicLinkLevels) }
            let target = try readLink(dir, name, path: shown, step: step)
            if target.first == UInt8(ascii: "/") {
                while directories.count > 1 { closeQuietly(directories.removeLast()) }
            }
            pending.append(contentsOf: pathComponents(target).reversed())
            continue
        }
        if isLast {
            return try sys(step, path: shown) { openat(dir, name, CInt(URUN_O_PATH) | O_NOFOLLOW | O_CLOEXEC) }
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw .kernel(step, path: shown, .notDirectory) }
        directories.append(
            try sys(step, path: shown) { openat(dir, name, CInt(URUN_O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) })
    }
    // The path named the root itself.
    return try sys(step, path: shown) { urun_dup_cloexec(directories[directories.count - 1]) }
}

/// Path components without empty ones ("/a//b/" → ["a", "b"]).
func pathComponents(_ path: [UInt8]) -> [[UInt8]] {
    path.split(separator: UInt8(ascii: "/")).map(Array.init)
}

/// The target of the symlink `name` in `dir`, as bytes.
func readLink(_ dir: CInt, _ name: [CChar], path: String, step: Step) throws(UrunError) -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
    let n = buffer.withUnsafeMutableBytes { raw in
        readlinkat(dir, name, raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count)
    }
    guard n >= 0 else { throw .kernel(step, path: path, .current) }
    return Array(buffer[0..<n])
}

/// The path through which mount(2) reaches what a descriptor refers to.
public func procFDPath(_ fd: CInt) -> String { "/proc/self/fd/\(fd)" }
