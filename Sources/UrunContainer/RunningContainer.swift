import CUrunSyscalls
import Glibc
import UrunKernel
import UrunProcess

/// A running container whose namespaces a new process enters: `urun exec`
/// and `--network container:NAME`.
struct RunningContainer {
    let record: ContainerRecord
    let state: ContainerState
    /// A pidfd of a process in all the container's namespaces: PID 1, or
    /// under --init its child (PID 1 is then urun, not dumpable, so that the
    /// container cannot reach urun's binary, and its namespaces cannot be
    /// entered through it either).
    let pidfd: CInt
    /// That process's pid on the host.
    let pid: pid_t
    /// The one uid mapped in the container's user namespace, when it has no
    /// subordinate ids; nil with them.
    let mappedUID: UInt32?

    static func open(_ record: ContainerRecord, store: ContainerStore) throws(UrunError) -> RunningContainer {
        let state = store.state(record.id)
        switch state.status {
        case .running: break
        case .paused: throw .invalid("container \(record.name) is paused; unpause it first")
        default: throw .invalid("container \(record.name) is not running")
        }
        guard let pid1 = ProcessIdentity(pid: state.pid, startTime: state.pidStartTime).open() else {
            throw .invalid("container \(record.name) is not running")
        }
        var pidfd = pid1
        var pid = state.pid
        if record.spec.useInit {
            defer { closeQuietly(pid1) }
            guard let child = firstChild(of: state.pid) else { throw .invalid("container \(record.name) is not running") }
            (pidfd, pid) = child
        }
        // Read while /proc is still the host's: inside, /proc/self does not name urun.
        let mapped = singleMappedUID(try? readText("/proc/\(state.pid)/uid_map"))
        return RunningContainer(record: record, state: state, pidfd: pidfd, pid: pid, mappedUID: mapped)
    }

    func close() { closeQuietly(pidfd) }

    /// A file of the container's own file system, reached from /proc/PID/root
    /// by the in-root walk: a path through /proc/PID/root alone would resolve
    /// the container's absolute symlinks (/etc/hosts -> /home/you/.ssh/...)
    /// against urun's root, the host's.
    func readFile(_ path: String) -> String? { ContainerUser.readInImage("/proc/\(pid)/root", path) }

    /// A pidfd for the first child of `pid` (PID 2 under --init), checked to
    /// still be that child once opened.
    static func firstChild(of pid: pid_t) -> (CInt, pid_t)? {
        guard let text = try? readText("/proc/\(pid)/task/\(pid)/children"),
            let child = text.split(separator: " ").first.flatMap({ pid_t($0) })
        else { return nil }
        let fd = urun_pidfd_open(child)
        guard fd >= 0 else { return nil }
        guard let stat = try? readText("/proc/\(child)/stat"), let close = stat.lastIndex(of: ")"),
            stat[stat.index(after: close)...].split(separator: " ").dropFirst().first == Substring("\(pid)")
        else {
            closeQuietly(fd)
            return nil
        }
        return (fd, child)
    }

    /// The container's one mapped uid, when its map is a single line (no subordinate ids).
    static func singleMappedUID(_ map: String?) -> UInt32? {
        guard let text = map else { return nil }
        let lines = text.split(separator: "\n")
        guard lines.count == 1 else { return nil }
        let fields = lines[0].split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 3, fields[2] == "1" else { return nil }
        return UInt32(fields[0])
    }
}
