import CUrunSyscalls
import Glibc
import UrunKernel

/// A container's own directory: the overlay's upper and work directories,
/// the mount point of its root, and its /etc files.
///
///     <data>/containers/<id>/upper   the container's writes
///                            work    overlayfs' own working directory
///
/// (In the container's mount namespace a tmpfs covers this directory: see MountPlan.)
///
/// While the container runs, its supervisor holds an flock(2) on the
/// directory. A directory whose lock nobody holds belongs to a urun that was
/// killed; the next `urun` removes it.
public final class ContainerDirectory {
    public let id: String
    public let path: String
    private let containers: String
    private var lock: CInt = -1

    public var upper: String { path + "/upper" }
    public var work: String { path + "/work" }

    /// Names a new container's directory; `create()` makes it.
    public init(in containers: String) {
        self.containers = containers
        self.id = randomHex(bytes: 32)
        self.path = containers + "/" + id
    }

    /// Creates the directory, holding its lock.
    public func create() throws(UrunError) {
        try makeDirectories(containers, mode: 0o700)
        // Creation holds the parent's lock shared, cleaning holds it exclusive:
        // a cleaner never sees a directory between its mkdir and its flock.
        // Clean only when nobody else is creating; never wait for it.
        let guardLock = try Self.openLock(containers + "/.lock")
        defer { closeQuietly(guardLock) }
        if flock(guardLock, LOCK_EX | LOCK_NB) == 0 { Self.removeStale(in: containers) }
        try sys(.createContainerDir, path: containers) { flock(guardLock, LOCK_SH) }

        try sys(.createContainerDir, explain: "mkdir \(path)/{upper,work}", path: path) { mkdir(path, 0o700) }
        lock = try sys(.createContainerDir, path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        try sys(.createContainerDir, path: path) { flock(lock, LOCK_EX | LOCK_NB) }
        for sub in ["upper", "work"] {
            try sys(.createContainerDir, path: path + "/" + sub) { mkdir(path + "/" + sub, 0o755) }
        }
    }

    /// Removes everything of the container and releases its lock.
    public func remove() {
        guard lock >= 0 else { return }
        if (try? removeTree(path)) == nil {
            writeQuietly(2, "urun: could not remove \(path); the next urun will retry\n")
        }
        closeQuietly(lock)
        lock = -1
    }

    deinit { remove() }

    /// Removes container directories whose supervisor is gone (killed with
    /// SIGKILL, or the machine rebooted). Called only with the parent's lock
    /// held exclusively, and touches only directories whose own lock is free.
    static func removeStale(in containers: String) {
        guard let names = try? directoryEntries(containers) else { return }
        for name in names where name.count == 64 {
            let path = containers + "/" + name
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { try? removeTree(path) }
            closeQuietly(fd)
        }
    }

    /// Whether the container `id` has no live supervisor (its directory is
    /// gone, or nobody holds its lock).
    public static func isAbandoned(id: String, in containers: String) -> Bool {
        let fd = open(containers + "/" + id, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return true }
        defer { closeQuietly(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    private static func openLock(_ path: String) throws(UrunError) -> CInt {
        try sys(.createContainerDir, path: path) { urun_open_mode(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
    }
}
