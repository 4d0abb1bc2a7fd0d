import CUrunSyscalls
import Glibc
import UrunKernel
import UrunProcess
import UrunSecurity
import UrunUserNS

/// A new process in a running container: `urun exec` and an OCI runtime's
/// `exec`. urun joins every namespace of a process of the container through
/// its pidfd (setns(2) with all the flags at once: the kernel enters the user
/// namespace first), then forks into the container's cgroup (clone3
/// CLONE_INTO_CGROUP): the child is in the container's PID namespace, the way
/// the container's own processes are.
///
/// urun itself stays in the host's PID namespace, so no process of the
/// container ever sees it; its child is not dumpable until it execs, so
/// nothing in the container can open its /proc/PID/exe (CVE-2019-5736).
struct JoinedProcess {
    var command: [String]
    /// Without PATH, the default one.
    var environment: [String]
    var workingDirectory: String
    let security: SecurityPolicy
    let seccomp: [UInt8]?
    /// The user to become with setuid(2) once inside (setns makes urun root there).
    var switchTo: ContainerUser?
    var tty = false
    var windowSize: WindowSize?
    var rlimits: [(resource: CInt, soft: UInt64, hard: UInt64)] = []
    var keepDescriptors: CInt = 2

    /// The started process: its pid, a pidfd, and its pty master with `tty`.
    struct Started {
        let pid: pid_t
        let pidfd: CInt
        let master: CInt?
    }

    /// Joins the namespaces of `target` (a pidfd of the process `pid`), forks
    /// into `cgroupFD` (or urun's own cgroup when -1), and returns once the
    /// child has exec'd or has said why it could not (its error, thrown).
    func start(joining target: CInt, pid targetPID: pid_t, name: String, cgroupFD: CInt) throws(UrunError) -> Started {
        _ = urun_set_dumpable(0)
        let namespaces = Self.differing(from: targetPID)
        try sys(.exec, explain: "setns(pidfd of PID 1, \(namespaces.flagNames))", path: name) {
            urun_setns(target, CInt(truncatingIfNeeded: namespaces.rawValue))
        }
        var report: [CInt] = [-1, -1]
        try sys(.exec) { urun_pipe2(&report, O_CLOEXEC) }
        var ptySocket: [CInt] = [-1, -1]
        if tty {
            try sys(.openPty) { socketpair(AF_UNIX, CInt(SOCK_SEQPACKET.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &ptySocket) }
        }
        var childPidfd: CInt = -1
        let pid = try sys(.exec, explain: "clone3(CLONE_INTO_CGROUP) → the new process in the container", path: name) {
            urun_clone(0, cgroupFD, &childPidfd)
        }
        if pid == 0 {
            closeQuietly(report[0])
            closeQuietly(ptySocket[0])
            let channel = ChildChannel(reportFD: report[1])
            do throws(UrunError) {
                try run(ptySocket: ptySocket[1])
            } catch {
                channel.fail(error)
            }
        }
        closeQuietly(report[1])
        closeQuietly(ptySocket[1])
        var master: CInt?
        if tty {
            let fd = urun_recv_fd(ptySocket[0])
            if fd >= 0 { master = fd }
        }
        closeQuietly(ptySocket[0])
        let failure = Channel.receive(from: report[0])
        closeQuietly(report[0])
        if let failure {
            var status: CInt = 0
            waitpid(pid, &status, 0)
            if let master { closeQuietly(master) }
            if case .failed(let error) = failure { throw error }
            throw .invalid("exec failed")
        }
        return Started(pid: pid, pidfd: childPidfd, master: master)
    }

    /// The namespaces `pid` is in that urun is not: a container may share
    /// some with urun (an OCI config without a user or network namespace of
    /// its own), and setns(2) refuses to "join" one urun is already in.
    static func differing(from pid: pid_t) -> Namespaces {
        let kinds: [(String, Namespaces)] = [
            ("user", .user), ("mnt", .mount), ("pid", .pid), ("uts", .uts), ("ipc", .ipc), ("net", .network), ("cgroup", .cgroup),
        ]
        var result: Namespaces = []
        for (file, namespace) in kinds {
            var mine = stat()
            var theirs = stat()
            guard stat("/proc/self/ns/" + file, &mine) == 0, stat("/proc/\(pid)/ns/" + file, &theirs) == 0 else { continue }
            if mine.st_ino != theirs.st_ino || mine.st_dev != theirs.st_dev { result.insert(namespace) }
        }
        return result
    }

    /// The child: its terminal, limits and directory, then the container's
    /// policy takes back what setns(2) gave (every capability of its user
    /// namespace), and the command runs.
    private func run(ptySocket: CInt) throws(UrunError) -> Never {
        if tty {
            let pty = try ContainerPty.open(size: windowSize)
            try sys(.openPty) { urun_send_fd(ptySocket, pty.master) }
            closeQuietly(pty.master)
            try pty.attachAsControllingTerminal()
            if let user = switchTo { fchown(pty.slave, user.uid, user.gid) }
            closeQuietly(pty.slave)
        }
        for limit in rlimits {
            var value = rlimit(rlim_cur: rlim_t(limit.soft), rlim_max: rlim_t(limit.hard))
            try sys(.setRlimits) { setrlimit(__rlimit_resource_t(UInt32(limit.resource)), &value) }
        }
        try sys(.changeDirectory, path: workingDirectory) { chdir(workingDirectory) }
        try execCommand(command, environment: environment, keeping: keepDescriptors) { () throws(UrunError) in
            try security.apply(program: seccomp) { () throws(UrunError) in
                if let user = switchTo { try switchUser(uid: user.uid, gid: user.gid, groups: user.keepsHostGroups ? nil : user.groups) }
            }
        }
    }
}
