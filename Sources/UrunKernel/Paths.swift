import Glibc

/// Where urun keeps things. `URUN_ROOT` (or `--root`) puts all of it under one
/// directory, which is what tests and CI do; otherwise the XDG directories.
public struct UrunPaths: Sendable {
    /// Unpacked images, shared by every container of the user.
    public let cache: String
    /// Containers' upper layers and persistent state.
    public let data: String
    /// Locks and runtime state; on tmpfs where the system provides one.
    public let runtime: String

    public var containers: String { data + "/containers" }

    public init(cache: String, data: String, runtime: String) {
        self.cache = cache
        self.data = data
        self.runtime = runtime
    }

    /// Makes the three directories private, creating them when missing: mode
    /// 0700 whatever the umask, owned by the caller. An image's setuid file in
    /// the cache is setuid to the user who unpacked it, and a layer's 1777 /tmp
    /// is writable by anyone who can reach it: nobody else may. An existing
    /// directory that others can enter is tightened (and the user told once);
    /// one owned by someone else is refused, naming the fix.
    public func makePrivate() throws(UrunError) {
        for directory in [cache, data, runtime] { try Self.makePrivate(directory) }
    }

    static func makePrivate(_ path: String) throws(UrunError) {
        try makeDirectories(path, mode: 0o700)
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .kernel(.createContainerDir, path: path, .current) }
        defer { closeQuietly(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .kernel(.createContainerDir, path: path, .current) }
        guard st.st_uid == getuid() else {
            throw .invalid("\(path) belongs to uid \(st.st_uid), not to you; urun keeps its files only in a directory of yours: remove it, or choose another with --root")
        }
        guard st.st_mode & 0o777 != 0o700 else { return }
        guard fchmod(fd, 0o700) == 0 else {
            throw .invalid("\(path) can be entered by other users and cannot be made private (\(Errno.current.message)); run: chmod 700 \(path)")
        }
        if st.st_mode & 0o077 != 0 {
            writeQuietly(2, "urun: made \(path) private (it was mode \(String(st.st_mode & 0o777, radix: 8)), open to other users)\n")
        }
    }

    /// Resolves the directories from `root` (if given) or the environment.
    public static func resolve(root: String? = nil) throws(UrunError) -> UrunPaths {
        if let root = root ?? environment("URUN_ROOT"), !root.isEmpty {
            let base = try absolute(root)
            return UrunPaths(cache: base + "/cache", data: base + "/data", runtime: base + "/run")
        }
        let home = try homeDirectory()
        let cacheHome = xdg("XDG_CACHE_HOME") ?? home + "/.cache"
        let dataHome = xdg("XDG_DATA_HOME") ?? home + "/.local/share"
        return UrunPaths(cache: cacheHome + "/urun", data: dataHome + "/urun", runtime: try runtimeDirectory())
    }

    /// $XDG_RUNTIME_DIR/urun when it is ours; under `su` it is unset or names
    /// another user's directory, so fall back to /run/user/UID (for root:
    /// /run), then to a private directory in /tmp that we verify we own.
    static func runtimeDirectory() throws(UrunError) -> String {
        let uid = getuid()
        // Root's is /run/urun, as podman's is /run/containers.
        for candidate in [xdg("XDG_RUNTIME_DIR"), "/run/user/\(uid)", uid == 0 ? "/run" : nil] {
            if let dir = candidate, let st = fileStatus(dir, followLinks: true), st.st_uid == uid,
                access(dir, W_OK) == 0
            {
                return dir + "/urun"
            }
        }
        let tmp = (xdg("TMPDIR") ?? "/tmp") + "/urun-\(uid)"
        if mkdir(tmp, 0o700) != 0 && errno != EEXIST {
            throw .kernel(.createContainerDir, path: tmp, .current)
        }
        guard let st = fileStatus(tmp), isDirectory(st), st.st_uid == uid, st.st_mode & 0o077 == 0 else {
            throw .invalid("\(tmp) is not a private directory owned by you; remove it or set XDG_RUNTIME_DIR")
        }
        return tmp
    }

    public static func homeDirectory() throws(UrunError) -> String {
        if let home = xdg("HOME") { return home }
        // Under `setpriv --reset-env` or cron HOME may be missing: ask passwd.
        let uid = getuid()
        if let text = try? readText("/etc/passwd"),
            let entry = PasswdEntry.parse(text).first(where: { $0.uid == uid }), entry.home.hasPrefix("/")
        {
            return entry.home
        }
        throw .invalid("cannot find your home directory; set HOME or URUN_ROOT")
    }

    /// An XDG variable, honoured only when absolute (as the spec says).
    static func xdg(_ name: String) -> String? {
        guard let value = environment(name), value.hasPrefix("/") else { return nil }
        return value
    }

    public static func absolute(_ path: String) throws(UrunError) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buffer, buffer.count) != nil else {
            throw .kernel(.readFile, path: ".", .current)
        }
        let cwd = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path == "." ? cwd : cwd + "/" + path
    }
}
