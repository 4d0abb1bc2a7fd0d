import CUrunSyscalls
import Glibc
import UrunKernel

/// Clones a child into new namespaces and walks it through the id-map handshake.
///
///     urun (parent, host namespaces)            child (new namespaces)
///     ──────────────────────────────            ──────────────────────────────────
///     clone(CLONE_NEWUSER|…)  ────────────────▶ unshare(`early`): slow ones, e.g. the
///     write setgroups, uid_map, gid_map           network namespace, meanwhile
///       (or start newuidmap, newgidmap)         blocks in read(release)
///     prepare(pid)   (directories, cgroup)
///     wait for the helpers
///     connect(pid)   (createRuntime hooks)
///     write(release, 1 byte)  ────────────────▶ now root of its user namespace:
///     connected(pid) (the network helper)         mounts, pivot_root, …
///     write(release, 1 byte)  ────────────────▶ (with `connected` only) execve
///     read(report) ◀─────────────────────────── on failure: one error record, _exit
///     EOF ◀──────────────────────────────────── on success: execve closes report (CLOEXEC)
///
/// `early` namespaces are created by the child right after the clone, while
/// the parent writes the maps: a new network namespace takes a millisecond,
/// and this way the two sides work at once. (A process has every capability
/// in a user namespace it just created, mapped or not.) `connected` is the
/// same idea at the other end: what the command needs but the child's set-up
/// does not (the network helper, some milliseconds) runs while the child
/// mounts, and the child waits for it just before its exec
/// (`ChildChannel.awaitParent`).
///
/// With `joining` (descriptors and the namespaces each stands for: a pidfd
/// for another container's user and network namespaces, or an OCI config's
/// namespace paths), the child enters those instead of making new ones: see
/// `cloneJoining`.
///
/// If the parent cannot write the maps it closes `release` unwritten; the
/// child reads EOF and exits silently. If the parent dies, PR_SET_PDEATHSIG
/// takes the child with it, so no container outlives its supervisor — unless
/// `diesWithParent` is false: an OCI runtime's `create` leaves its container
/// to the engine that called it (conmon, the containerd shim).
public func cloneIntoNamespaces(
    _ namespaces: Namespaces, early: Namespaces = [], idMap: IDMap?, joining: [NamespaceEntry] = [], cgroupFD: CInt = -1,
    diesWithParent: Bool = true,
    prepare: (pid_t) throws(UrunError) -> Void = { _ in },
    connect: (pid_t) throws(UrunError) -> Void = { _ in },
    connected: ((pid_t) throws(UrunError) -> Void)? = nil,
    child body: (ChildChannel) -> Never
) throws(UrunError) -> NamespacedChild {
    // A write to the release pipe of a child that died must fail with EPIPE,
    // not kill urun with SIGPIPE. (The child restores the default before exec.)
    signal(SIGPIPE, SIG_IGN)
    var release: [CInt] = [-1, -1]
    var report: [CInt] = [-1, -1]
    try sys(.clone) { urun_pipe2(&release, O_CLOEXEC) }
    do throws(UrunError) {
        try sys(.clone) { urun_pipe2(&report, O_CLOEXEC) }
    } catch {
        release.forEach(closeQuietly)
        throw error
    }

    var pidfd: CInt = -1
    let pid: pid_t
    do throws(UrunError) {
        if !joining.isEmpty {
            pid = try cloneJoining(joining, namespaces, pidfd: &pidfd)
        } else {
            pid = try sys(
                .clone, explain: "clone(\(namespaces.flagNames)\(cgroupFD >= 0 ? "|CLONE_INTO_CGROUP" : ""))"
            ) { urun_clone(namespaces.rawValue, cgroupFD, &pidfd) }
        }
    } catch {
        (release + report).forEach(closeQuietly)
        throw error
    }

    if pid == 0 {
        // The child. Only this process's own memory and descriptors exist here;
        // the parent was single-threaded, so no lock is held by a vanished thread.
        closeQuietly(release[1])
        closeQuietly(report[0])
        if diesWithParent { _ = urun_set_pdeathsig(SIGKILL) }
        let channel = ChildChannel(reportFD: report[1], releaseFD: connected == nil ? -1 : release[0])
        if !early.isEmpty {
            do throws(UrunError) {
                try sys(.unshareNamespaces, explain: "unshare(\(early.flagNames))  [in the child]") {
                    urun_unshare(CInt(truncatingIfNeeded: early.rawValue))
                }
            } catch {
                channel.fail(error)
            }
        }
        guard Channel.receive(from: release[0]) == .proceed else { _exit(1) }  // the parent gave up or died
        if connected == nil { closeQuietly(release[0]) }
        body(channel)
    }

    closeQuietly(release[0])
    closeQuietly(report[1])
    let child = NamespacedChild(pid: pid, pidfd: pidfd, reportFD: report[0])
    Explain.note(.clone, "→ child pid \(pid) on the host, pid 1 in its own PID namespace")
    do throws(UrunError) {
        let maps = try idMap?.startWriting(for: pid)
        do throws(UrunError) {
            try prepare(pid)  // while newuidmap and newgidmap run
        } catch {
            try? maps?.finish()
            throw error
        }
        try maps?.finish()
        try connect(pid)  // what needs the maps in place: the createRuntime hooks
        // EPIPE means the child already failed (in its early unshare, or its
        // set-up); its report says why, and awaitExec() reads it.
        func letChildGo() throws(UrunError) {
            if !Channel.send(.proceed, on: release[1]) && errno != EPIPE {
                throw .kernel(.releaseChild, path: nil, .current)
            }
        }
        Explain.step(.releaseChild, "write(release pipe) → the child continues")
        try letChildGo()
        if let connected {
            do throws(UrunError) {
                try connected(pid)  // while the child mounts; it waits before its exec
            } catch {
                // A child that failed first took its namespaces with it, and
                // the helper fails for that: the child's own report says why.
                closeQuietly(release[1])
                release[1] = -1
                throw child.reportedFailure() ?? error
            }
            try letChildGo()
        }
        closeQuietly(release[1])
    } catch {
        closeQuietly(release[1])
        child.reap()
        throw error
    }
    return child
}

/// A namespace to enter: a descriptor (a /proc/PID/ns file, or a pidfd for
/// several at once) and the CLONE_NEW* flags it stands for.
public struct NamespaceEntry: Sendable {
    public let fd: CInt
    public let flags: CInt

    public init(fd: CInt, flags: CInt) {
        self.fd = fd
        self.flags = flags
    }
}

/// Clones the container into the namespaces `entries` name (in order: a user
/// namespace first), returning 0 in the container and its pid in urun.
///
///     urun ── clone() ──▶ intermediate: setns(each entry)
///                                       clone(CLONE_PARENT|CLONE_NEWPID|CLONE_NEWNS) ──▶ container
///          ◀── its pid (handoff pipe) ──                                   (urun's own child)
///     reap the intermediate, pidfd_open(container)
///
/// urun never leaves the host's namespaces (a process cannot setns back out
/// of a user namespace, and a joined PID namespace is only its children's),
/// and the container is still urun's child, supervised and reaped as any
/// other. The container's PID namespace must be made by a process already
/// inside the joined user namespace, hence the intermediate.
private func cloneJoining(_ entries: [NamespaceEntry], _ namespaces: Namespaces, pidfd: inout CInt) throws(UrunError) -> pid_t {
    var handoff: [CInt] = [-1, -1]
    try sys(.joinNamespaces) { urun_pipe2(&handoff, O_CLOEXEC) }
    defer { closeQuietly(handoff[0]) }
    var intermediateFD: CInt = -1
    let intermediate: pid_t
    do throws(UrunError) {
        intermediate = try sys(.joinNamespaces, explain: "clone() → an intermediate child") { urun_clone(0, -1, &intermediateFD) }
    } catch {
        closeQuietly(handoff[1])
        throw error
    }
    if intermediate == 0 {
        closeQuietly(handoff[0])
        handoff[0] = -1
        var message: ChannelMessage
        do throws(UrunError) {
            for entry in entries where !Namespaces.isCurrent(entry.fd, flags: entry.flags) {
                let names = Namespaces(rawValue: UInt64(entry.flags)).flagNames
                try sys(.joinNamespaces, explain: "setns(\(entry.fd), \(names))  [in the intermediate]") {
                    urun_setns(entry.fd, entry.flags)
                }
            }
            var unused: CInt = -1
            let pid = try sys(.clone, explain: "clone(CLONE_PARENT|\(namespaces.flagNames))  [in the intermediate]") {
                urun_clone(namespaces.rawValue | UInt64(URUN_CLONE_PARENT), -1, &unused)
            }
            if pid == 0 {
                closeQuietly(handoff[1])
                return 0
            }
            message = .pid(pid)
        } catch {
            message = .failed(error)
        }
        Channel.send(message, on: handoff[1])
        _exit(0)
    }
    closeQuietly(handoff[1])
    closeQuietly(intermediateFD)
    let message = Channel.receive(from: handoff[0])
    var status: CInt = 0
    while waitpid(intermediate, &status, 0) < 0 && errno == EINTR {}
    guard case .pid(let pid) = message else {
        if case .failed(let error) = message { throw error }
        throw .invalid("could not join the other container's namespaces (the intermediate process died)")
    }
    // The container is urun's child: its pid cannot be reused before urun reaps it.
    pidfd = urun_pidfd_open(pid)
    return pid
}

/// The child's end of the handshake.
public final class ChildChannel {
    public let reportFD: CInt
    /// The release pipe, kept for the second go `awaitParent` waits for; -1 when none comes.
    private var releaseFD: CInt
    /// Past `ready()`: the parent may be gone (an OCI `create` returns), so a
    /// failure is the container's own to say, on its stderr.
    private var isReady = false

    public init(reportFD: CInt, releaseFD: CInt = -1) {
        self.reportFD = reportFD
        self.releaseFD = releaseFD
    }

    /// Waits until the parent has done what the command needs and the set-up
    /// did not (`connected`: the network helper), just before the exec. Exits
    /// silently when the parent gave up instead: it reports why and reaps us.
    public func awaitParent() {
        guard releaseFD >= 0 else { return }
        guard Channel.receive(from: releaseFD) == .proceed else { _exit(1) }
        closeQuietly(releaseFD)
        releaseFD = -1
    }

    /// Tells the parent that everything up to the command's exec is done
    /// (`create`: the container waits for `start`).
    public func ready() {
        Channel.send(.ready, on: reportFD)
        isReady = true
    }

    /// Reports `error` to the parent and exits: the child's only way out on failure.
    public func fail(_ error: UrunError) -> Never {
        if isReady {
            writeQuietly(2, "urun: \(error)\n")
        } else {
            Channel.send(.failed(error), on: reportFD)
        }
        _exit(error.exitCode)
    }
}

/// The parent's handle on a cloned child.
public struct NamespacedChild: Sendable {
    public let pid: pid_t
    /// A pidfd (pidfd_open(2)), so signals never hit a recycled pid; -1 on old kernels.
    public let pidfd: CInt
    let reportFD: CInt

    /// Blocks until the child has exec'd its command (the report pipe reaches
    /// EOF) or has reported why it could not.
    public func awaitExec() throws(UrunError) {
        defer { closeQuietly(reportFD) }
        while let message = Channel.receive(from: reportFD) {
            if case .failed(let error) = message { throw error }
        }
    }

    /// Blocks until the child is ready (`ChildChannel.ready`) or has reported
    /// why it could not get there. The report pipe stays open: a failure of
    /// the exec that follows is the child's own to report.
    public func awaitReady() throws(UrunError) {
        switch Channel.receive(from: reportFD) {
        case .ready: return
        case .failed(let error): throw error
        default: throw .invalid("the container's init died before it was ready")
        }
    }

    /// The failure the child reported, once urun has stopped releasing it
    /// (it then exits at its next wait): nil if it reports none within
    /// `milliseconds`.
    func reportedFailure(milliseconds: CInt = 2000) -> UrunError? {
        var ready = pollfd(fd: reportFD, events: Int16(POLLIN), revents: 0)
        while poll(&ready, 1, milliseconds) > 0 {
            guard let message = Channel.receive(from: reportFD) else { return nil }
            if case .failed(let error) = message { return error }
        }
        return nil
    }

    /// Kills and reaps the child: for setup failures in the parent.
    public func reap() {
        kill(pid, SIGKILL)
        var status: CInt = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        closeQuietly(pidfd)
        closeQuietly(reportFD)
    }
}

/// Runs `body` in a child process that is root of a new user namespace
/// mapped by `idMap` (and of `namespaces` made with it): files owned by any mapped id are its own there. For
/// unpacking image layers with their owners, and removing what containers
/// wrote as other users. The caller must be single-threaded (see above).
public func runInUserNamespace(
    _ idMap: IDMap, also namespaces: Namespaces = [], _ body: () throws(UrunError) -> Void
) throws(UrunError) {
    let child = try cloneIntoNamespaces(namespaces.union(.user), idMap: idMap) { channel in
        do throws(UrunError) {
            try becomeRootInside()
            try body()
        } catch {
            channel.fail(error)
        }
        _exit(0)
    }
    defer { closeQuietly(child.pidfd) }
    // Waits for the child's report; a ^C or SIGTERM that reached only us
    // goes on to the child, which cleans up and reports "interrupted".
    var forwarded = false
    var failure: UrunError?
    while let message = Channel.receive(from: child.reportFD, onInterrupt: {
        if urun_interrupted() != 0 && !forwarded {
            kill(child.pid, urun_interrupted())
            forwarded = true
        }
    }) {
        if case .failed(let error) = message { failure = error }
    }
    closeQuietly(child.reportFD)
    var status: CInt = 0
    while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
    if let failure { throw failure }
    guard status == 0 else { throw .invalid("a helper process in the user namespace died (status \(status))") }
}

/// removeTree, and where the caller may not remove something that a
/// container wrote as another of its users, the same inside the caller's
/// subordinate mapping.
public func removeTreeAsOwner(_ path: String) throws(UrunError) {
    try asOwner { () throws(UrunError) in try removeTree(path) }
}

/// Removes the entry `entry` of the directory `directory` (a whole tree), as removeTreeAsOwner.
public func removeEntryAsOwner(_ entry: DirectoryEntry, in directory: CInt, display: String) throws(UrunError) {
    try asOwner { () throws(UrunError) in try removeEntry(entry, in: directory, display: display) }
}

/// Runs `body`; if it fails, once more inside the caller's subordinate mapping,
/// where files a container's other users made are the caller's to remove.
private func asOwner(_ body: () throws(UrunError) -> Void) throws(UrunError) {
    do {
        try body()
    } catch {
        guard getuid() != 0, let map = try? IDMap.subordinateForCaller(.auto) else { throw error }
        try runInUserNamespace(map, body)
    }
}

/// Runs `body` in a child process that has joined the namespaces `entries`
/// name (a user namespace first: a running container's user and mount
/// namespaces, for `cp` and `export`); returns once it is done, with its error.
public func runJoining(_ entries: [NamespaceEntry], _ body: () throws(UrunError) -> Void) throws(UrunError) {
    var report: [CInt] = [-1, -1]
    try sys(.joinNamespaces) { urun_pipe2(&report, O_CLOEXEC) }
    var pidfd: CInt = -1
    let pid: pid_t
    do throws(UrunError) {
        pid = try sys(.joinNamespaces, explain: "clone() → a child that joins the container's namespaces") { urun_clone(0, -1, &pidfd) }
    } catch {
        report.forEach(closeQuietly)
        throw error
    }
    if pid == 0 {
        closeQuietly(report[0])
        // Not dumpable before it joins: the container's root may not ptrace it,
        // nor open its descriptors (urun's own, the host's files) through /proc.
        _ = urun_set_dumpable(0)
        do throws(UrunError) {
            for entry in entries {
                try sys(.joinNamespaces, explain: "setns(\(entry.fd), \(Namespaces(rawValue: UInt64(entry.flags)).flagNames))") {
                    urun_setns(entry.fd, entry.flags)
                }
            }
            try body()
        } catch {
            Channel.send(.failed(error), on: report[1])
        }
        _exit(0)
    }
    closeQuietly(report[1])
    defer { closeQuietly(pidfd) }
    var failure: UrunError?
    while let message = Channel.receive(from: report[0]) {
        if case .failed(let error) = message { failure = error }
    }
    closeQuietly(report[0])
    var status: CInt = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    if let failure { throw failure }
    guard status == 0 else { throw .invalid("a helper process in the container's namespaces died (status \(status))") }
}

/// Makes a child that was cloned into a user namespace its root. Its ids are
/// the ones its host ids map to: root with the usual maps (the caller is 0
/// inside), but under keep-id the caller keeps its own number, and files it
/// creates (an unpacked layer, a mount point) must still belong to root.
public func becomeRootInside() throws(UrunError) {
    guard getuid() != 0 || getgid() != 0 else { return }
    guard (try? readText("/proc/self/uid_map"))?.split(separator: "\n").contains(where: {
        $0.split(separator: " ", omittingEmptySubsequences: true).first == "0"
    }) == true else { return }
    try sys(.dropPrivileges, explain: "setgid(0), setuid(0)  [root of the user namespace]") {
        setgid(0) == 0 ? setuid(0) : -1
    }
}

/// `urun unshare COMMAND`: the command as root of a new user namespace with
/// the caller's map (podman unshare), where the files a container's other
/// users left (owned by subordinate ids on the host) are the caller's to read,
/// change or remove. Returns the command's wait status.
public func runUnshared(_ command: [String], map: IDMap) throws(UrunError) -> CInt {
    let child = try cloneIntoNamespaces([.user], idMap: map) { channel in
        do throws(UrunError) {
            try becomeRootInside()
            let path = try lookupCommand(command[0], path: environment("PATH") ?? defaultPath)
            _ = withCStrings(command) { argv in execv(path, argv) }
            throw .kernel(.exec, path: path, .current)
        } catch {
            channel.fail(error)
        }
    }
    do throws(UrunError) {
        try child.awaitExec()
    } catch {
        child.reap()
        throw error
    }
    defer { closeQuietly(child.pidfd) }
    // The terminal's ^C and ^\ reach the command too: urun waits for it, as a shell does.
    signal(SIGINT, SIG_IGN)
    signal(SIGQUIT, SIG_IGN)
    var status: CInt = 0
    while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
    return status
}
