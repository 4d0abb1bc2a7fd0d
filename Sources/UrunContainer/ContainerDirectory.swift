import CUrunSyscalls
import Glibc
import UrunKernel
import UrunUserNS

/// A container's own directory: the overlay's upper and work directories,
/// and for a kept container its config.json and log.
///
///     <data>/containers/<id>/upper   the container's writes
///                            work    overlayfs' own working directory
///
/// (In the container's mount namespace a tmpfs covers this directory: see MountPlan.)
///
/// While the container runs, its supervisor holds an flock(2) on the
/// directory. An ephemeral container's directory (no config.json) whose lock
/// nobody holds belongs to a urun that was killed; the next `urun` removes it.
public final class ContainerDirectory {
    public let id: String
    public let path: String
    private let containers: String
    private var lock: CInt = -1

    public var upper: String { path + "/upper" }
    public var work: String { path + "/work" }

    /// Names a container's directory: a new one when `id` is nil.
    public init(in containers: String, id: String? = nil) {
        self.containers = containers
        self.id = id ?? randomHex(bytes: 32)
        self.path = containers + "/" + self.id
    }

    /// Creates the directory of a new container, holding its lock.
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
        try acquire()
        try makeLayers()
    }

    /// Takes the lock of an existing container's directory: it is then ours
    /// to run. Fails when another supervisor runs it already.
    public func acquire() throws(UrunError) {
        guard lock < 0 else { return }  // ours already: its monitor restarts it
        let fd = try sys(.createContainerDir, path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            closeQuietly(fd)
            throw .invalid("container \(id.prefix(12)) is already running")
        }
        lock = fd
    }

    /// upper and work, for a directory that `create` did not make (a kept container's).
    public func makeLayers() throws(UrunError) {
        for sub in ["upper", "work"] where mkdir(path + "/" + sub, 0o755) != 0 && errno != EEXIST {
            throw .kernel(.createContainerDir, path: path + "/" + sub, .current)
        }
    }

    /// Releases the lock, keeping everything (a kept container that stopped).
    public func release() {
        closeQuietly(lock)
        lock = -1
    }

    /// Removes everything of the container and releases its lock.
    public func remove() {
        guard lock >= 0 else { return }
        Explain.step(.removeContainerDir, "remove \(path)")
        if (try? removeTreeAsOwner(path)) == nil {
            writeQuietly(2, "urun: could not remove \(path); the next urun will retry\n")
        }
        Explain.note(.removeContainerDir, "removed; urun exits")
        release()
    }

    /// Whether the container `id` has no live supervisor (its directory is
    /// gone, or nobody holds its lock).
    public static func isAbandoned(id: String, in containers: String) -> Bool {
        let fd = open(containers + "/" + id, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return true }
        defer { closeQuietly(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    /// Removes the directories of ephemeral containers whose supervisor is
    /// gone (killed with SIGKILL, or the machine rebooted). Called only with
    /// the parent's lock held exclusively; touches only directories without a
    /// config.json whose own lock is free.
    static func removeStale(in containers: String) {
        guard let names = try? directoryEntries(containers) else { return }
        for name in names where name.count == 64 && access(containers + "/" + name + "/config.json", F_OK) != 0 {
            let path = containers + "/" + name
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { try? removeTreeAsOwner(path) }
            closeQuietly(fd)
        }
    }

    private static func openLock(_ path: String) throws(UrunError) -> CInt {
        try sys(.createContainerDir, path: path) { urun_open_mode(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
    }
}
