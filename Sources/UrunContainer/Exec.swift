import CUrunSyscalls
import Glibc
import UrunKernel
import UrunProcess
import UrunSecurity
import UrunUserNS

/// `urun exec`: a new process in a running container.
public struct ExecOptions: Sendable {
    public var command: [String]
    public var environment: [String] = []
    public var workingDirectory: String?
    public var user: String?
    public var tty = false

    public init(command: [String]) {
        self.command = command
    }
}

extension Containers {
    /// Runs `options.command` in the running container `record` and returns
    /// its exit status. urun joins every namespace of the container's PID 1
    /// through a pidfd (setns(2) with all the flags at once: the kernel enters
    /// the user namespace first), then forks into the container's cgroup
    /// (clone3 CLONE_INTO_CGROUP): the child is in the container's PID
    /// namespace, the way the container's own processes are.
    ///
    /// urun itself stays in the host's PID namespace, so no process of the
    /// container ever sees it; its child is not dumpable until it execs, so
    /// nothing in the container can open its /proc/PID/exe (CVE-2019-5736).
    public func exec(_ record: ContainerRecord, _ options: ExecOptions) throws(UrunError) -> ExitStatus {
        let container = try RunningContainer.open(record, store: store)
        defer { container.close() }
        let state = container.state
        let cgroupFD: CInt = state.cgroup.map { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } ?? -1
        defer { closeQuietly(cgroupFD) }
        let windowSize = options.tty ? (WindowSize.of(0) ?? WindowSize.of(1)) : nil
        let mappedUID = container.mappedUID
        // From the host's cache, before the mount namespace changes.
        let security = record.spec.security
        let seccomp = try security.seccompProgram(cache: store.paths.cache, singleMapping: mappedUID != nil)

        _ = urun_set_dumpable(0)
        let all: UInt64 = UInt64(URUN_CLONE_NEWUSER | URUN_CLONE_NEWNS | URUN_CLONE_NEWPID | URUN_CLONE_NEWUTS)
            | UInt64(URUN_CLONE_NEWIPC | URUN_CLONE_NEWNET | URUN_CLONE_NEWCGROUP)
        try sys(.exec, explain: "setns(pidfd of PID 1, CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|...)", path: record.name) {
            urun_setns(container.pidfd, CInt(truncatingIfNeeded: all))
        }
        // Now in the container's mount namespace: its files are the ones read below.
        let user = try ContainerUser.resolve(options.user ?? record.spec.user, rootfs: "/")
        if let mapped = mappedUID, user.uid != mapped {
            throw .invalid("urun exec -u: only uid \(mapped) is mapped in this container (it has no subordinate ids)")
        }
        // With subordinate ids, setns(2) made us root inside: the child switches.
        let switchTo = mappedUID == nil ? user : nil
        var hostname = [CChar](repeating: 0, count: 256)
        gethostname(&hostname, 255)
        let environment = ContainerEnvironment.build(
            hostname: String(decoding: hostname.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self),
            home: user.home, tty: options.tty, image: record.spec.imageEnvironment,
            user: record.spec.environment + options.environment)
        let directory = options.workingDirectory ?? record.spec.workingDirectory ?? "/"

        var report: [CInt] = [-1, -1]
        try sys(.exec) { urun_pipe2(&report, O_CLOEXEC) }
        var ptySocket: [CInt] = [-1, -1]
        if options.tty {
            try sys(.openPty) { socketpair(AF_UNIX, CInt(SOCK_SEQPACKET.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &ptySocket) }
        }
        let blocked = blockSupervisedSignals()
        var childPidfd: CInt = -1
        let pid = try sys(.exec, explain: "clone3(CLONE_INTO_CGROUP) → the new process in the container", path: record.name) {
            urun_clone(0, cgroupFD, &childPidfd)
        }
        if pid == 0 {
            closeQuietly(report[0])
            closeQuietly(ptySocket[0])
            let channel = ChildChannel(reportFD: report[1])
            do throws(UrunError) {
                if options.tty {
                    let pty = try ContainerPty.open(size: windowSize)
                    try sys(.openPty) { urun_send_fd(ptySocket[1], pty.master) }
                    closeQuietly(pty.master)
                    try pty.attachAsControllingTerminal()
                    if let user = switchTo { fchown(pty.slave, user.uid, user.gid) }
                    closeQuietly(pty.slave)
                }
                try sys(.changeDirectory, path: directory) { chdir(directory) }
                // setns(2) gave every capability of the container's user
                // namespace: the container's policy takes them back.
                try execCommand(options.command, environment: environment) { () throws(UrunError) in
                    try security.apply(program: seccomp) { () throws(UrunError) in
                        if let user = switchTo { try switchUser(uid: user.uid, gid: user.gid, groups: user.groups) }
                    }
                }
            } catch {
                channel.fail(error)
            }
        }
        closeQuietly(report[1])
        closeQuietly(ptySocket[1])
        var master: CInt?
        if options.tty {
            let fd = urun_recv_fd(ptySocket[0])
            if fd >= 0 { master = fd }
        }
        closeQuietly(ptySocket[0])
        let failure = try readAll(report[0])
        closeQuietly(report[0])
        if !failure.isEmpty {
            var status: CInt = 0
            waitpid(pid, &status, 0)
            throw UrunError(record: failure) ?? .invalid("exec failed")
        }
        let supervisor = try Supervisor(pid: pid, pidfd: childPidfd, blockedSignals: blocked, master: master)
        return supervisor.run()
    }
}
