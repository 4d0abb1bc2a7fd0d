import CUrunSyscalls
import Glibc
import UrunCgroups
import UrunImage
import UrunKernel
import UrunNetwork
import UrunOCI
import UrunProcess
import UrunRootfs
import UrunSecurity
import UrunUserNS

/// Where a container's stdin, stdout and stderr go (without -t).
public enum ContainerIO: Sendable {
    /// urun's own: the foreground container reads and writes the terminal or pipes urun has.
    case inherit
    /// These descriptors (a monitor's or a logging urun's pipes).
    case descriptors(stdin: CInt, stdout: CInt, stderr: CInt)
}

/// A container whose command has started.
public struct StartedContainer: Sendable {
    public let pid: pid_t
    public let pidfd: CInt
    /// The pty master, with -t.
    public let master: CInt?
    public let cgroup: ContainerCgroup?
    public let blockedSignals: sigset_t
    public let startedAt: Timestamp
    /// Keeps the image from removal while the container runs.
    public let image: Image
    /// pasta, when the container has a network of its own; stopped in `finish`.
    public let network: NetworkHelper?
}

/// Starts containers: the one place that knows the order of the steps.
///
/// 1. The image is unpacked (once) into the cache; the user is resolved in it.
/// 2. The mount plan is built, as plain values.
/// 3. One clone(2) creates the user, PID and mount namespaces; the child makes
///    its UTS, IPC and network namespaces while urun writes the id maps, makes
///    the container's directory and cgroup, and releases the child; urun then
///    starts the network helper while the child mounts.
/// 4. The child, root of its namespaces, enters a new cgroup namespace,
///    applies the mount plan, pivots into the overlay, sets the hostname,
///    brings loopback up, attaches its pty and execs the command.
/// 5. urun supervises (`run`), or hands the container to a monitor.
public struct Launcher {
    public let paths: UrunPaths

    public init(paths: UrunPaths) {
        self.paths = paths
    }

    /// `urun run` in the foreground, removing the container at the end.
    public func run(_ spec: ContainerSpec) throws(UrunError) -> ExitStatus {
        let image = try spec.resolveImage(cache: paths.cache, showProgress: true)
        let spec = spec.resolved(with: image.config)
        let directory = ContainerDirectory(in: paths.containers)
        defer { directory.remove() }
        let started = try start(spec, image: image, directory: directory, io: .inherit, ephemeral: true)
        // Waiting some 25 ms for the helper to exit is needed only to free
        // published ports before urun returns (a next run may want them).
        defer { finish(started, reapNetwork: started.network.map { !$0.ports.isEmpty } ?? false) }
        let supervisor = try Supervisor(
            pid: started.pid, pidfd: started.pidfd, blockedSignals: started.blockedSignals, master: started.master)
        return supervisor.run()
    }

    /// `urun run --print-config`: the plan `run` would launch (the image
    /// unpacked into the cache if it is not there yet), launching nothing.
    public func plan(for spec: ContainerSpec) throws(UrunError) -> ContainerPlan {
        let image = try spec.resolveImage(cache: paths.cache, showProgress: false)
        let spec = spec.resolved(with: image.config)
        let joined = try spec.network.joinedContainer.map { (name) throws(UrunError) in
            let store = ContainerStore(paths: paths)
            return try RunningContainer.open(try store.resolve(name), store: store)
        }
        defer { joined?.close() }
        return try ContainerPlan.run(
            spec, image: image, directory: ContainerDirectory(in: paths.containers), ephemeral: true, joined: joined,
            helper: try Self.networkHelper(for: spec))
    }

    /// Prepares and starts a container, up to its command's successful exec.
    /// `directory` is created (ephemeral) or locked (a kept container's).
    public func start(
        _ spec: ContainerSpec, image: Image, directory: ContainerDirectory, io: ContainerIO, ephemeral: Bool
    ) throws(UrunError) -> StartedContainer {
        // --network container:NAME: that container's user and network namespaces, its /etc files.
        let joined = try spec.network.joinedContainer.map { (name) throws(UrunError) in
            let store = ContainerStore(paths: paths)
            return try RunningContainer.open(try store.resolve(name), store: store)
        }
        defer { joined?.close() }
        let helper = try Self.networkHelper(for: spec)
        let plan = try ContainerPlan.run(
            spec, image: image, directory: directory, ephemeral: ephemeral, joined: joined, helper: helper)

        // Made in `prepare`, after the clone and before the child goes on: the
        // child enters its cgroup before it mounts or execs anything.
        var cgroup: ContainerCgroup?
        var network: NetworkHelper?
        var noNetwork: UrunError?
        var started = false
        defer {
            if !started {
                network?.stop()
                removeCgroup(cgroup)
            }
        }
        let containers = paths.containers
        let blocked = blockSupervisedSignals()
        let launched: Launched
        do throws(UrunError) {
            launched = try launch(
                plan, io: io,
                joining: joined.map { [NamespaceEntry(fd: $0.pidfd, flags: CInt(URUN_CLONE_NEWUSER | URUN_CLONE_NEWNET))] } ?? [],
                prepare: { (pid) throws(UrunError) in
                    if ephemeral {
                        try directory.create()
                    } else {
                        try directory.acquire()
                        try directory.makeLayers()
                    }
                    cgroup = try ContainerCgroup.create(id: directory.id, limits: spec.limits) {
                        ContainerDirectory.isAbandoned(id: $0, in: containers)
                    }
                    // Without a PID namespace of its own, only a cgroup holds
                    // every process of the container, so that none outlives it.
                    if spec.hostNamespaces.contains(.pid) && cgroup == nil {
                        throw .invalid("--pid host needs a cgroup of the container's own, so that its processes end with it, and urun's cgroup is not delegated to you; run urun inside \"systemd-run --user --scope -p Delegate=yes ...\" (Docs/cgroups.md)")
                    }
                    try cgroup?.cgroup.add(pid: pid)
                },
                // The helper starts while the child mounts; the command waits for its interface.
                connected: helper == nil ? nil : { (pid) throws(UrunError) in
                    guard let helper else { return }
                    let ports = try spec.ports.map { (port) throws(UrunError) in try port.withHostPort() }
                    do throws(UrunError) {
                        network = try NetworkHelper.start(helper, for: pid, ports: ports, mtu: spec.mtu)
                    } catch {
                        // The default falls back to loopback only (said once the command runs: the
                        // helper also fails when the child did, whose error is then the one to say);
                        // an explicit --network private or -p fails.
                        guard spec.network == .auto && ports.isEmpty else { throw error }
                        noNetwork = error
                    }
                })
        } catch {
            if image.layerBase == nil, let map = plan.idMap, let explained = Self.unmappedOwner(error, directory: image.layerPaths[0], map: map) {
                throw explained
            }
            throw error
        }
        started = true
        if let noNetwork { writeQuietly(2, "urun: no network (\(noNetwork)); the container has loopback only\n") }
        return StartedContainer(
            pid: launched.child.pid, pidfd: launched.child.pidfd, master: launched.master, cgroup: cgroup, blockedSignals: blocked,
            startedAt: .now(), image: image, network: network)
    }

    /// A container cloned and set up: its command exec'd, or (with a start
    /// FIFO) found and waiting for `start`.
    struct Launched {
        let child: NamespacedChild
        /// The pty master, with process.terminal.
        let master: CInt?
    }

    /// The one launch sequence, for both front ends: one clone(2) makes the
    /// plan's namespaces (the user, PID and mount ones; the child unshares
    /// UTS, IPC and network while urun writes the id maps); `prepare` runs
    /// meanwhile (directories, the cgroup), `connect` once the maps are
    /// written (the createRuntime hooks); then the child runs `ChildSetup` —
    /// joins, cgroup and time namespaces, the mount plan, pivot_root,
    /// hostname, loopback, stdio, limits, the pty, the policy — while urun
    /// runs `connected` (the network helper), which the child waits for just
    /// before it execs the command, or first says it is ready and waits on
    /// `startFIFO` (an OCI `create`). Returns once it has exec'd (or is
    /// ready); throws why not, the child reaped.
    func launch(
        _ plan: ContainerPlan, io: ContainerIO, joining: [NamespaceEntry] = [], diesWithParent: Bool = true,
        startFIFO: CInt? = nil, keepDescriptors: CInt = 2,
        hookState: @escaping (pid_t, String) -> JSON = { _, _ in .object([]) },
        prepare: (pid_t) throws(UrunError) -> Void, connect: (pid_t) throws(UrunError) -> Void = { _ in },
        connected: ((pid_t) throws(UrunError) -> Void)? = nil
    ) throws(UrunError) -> Launched {
        // Namespaces entered by path are opened now, while the paths are the host's.
        var joins: [(fd: CInt, type: CInt)] = []
        var entered: [NamespaceEntry] = []
        defer {
            joins.forEach { closeQuietly($0.fd) }
            entered.forEach { closeQuietly($0.fd) }
        }
        for join in plan.joins {
            joins.append((try sys(.joinNamespaces, path: join.path) { open(join.path, O_RDONLY | O_CLOEXEC) }, join.type))
        }
        for entry in plan.entered {
            entered.append(NamespaceEntry(fd: try sys(.joinNamespaces, path: entry.path) { open(entry.path, O_RDONLY | O_CLOEXEC) }, flags: entry.type))
        }
        // Compiled (or read from the cache) here: the child only loads it.
        let seccomp = try plan.security.seccompProgram(cache: paths.cache, singleMapping: plan.singleMapping)
        // The child hands its pty master back over this socket (SCM_RIGHTS).
        var ptySocket: [CInt] = [-1, -1]
        if plan.process.terminal {
            try sys(.openPty) { socketpair(AF_UNIX, CInt(SOCK_SEQPACKET.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &ptySocket) }
        }
        defer { ptySocket.forEach(closeQuietly) }

        let child = try cloneIntoNamespaces(
            plan.cloned, early: plan.early, idMap: plan.idMap, joining: joining + entered, diesWithParent: diesWithParent,
            prepare: prepare, connect: connect, connected: connected
        ) { channel in
            closeQuietly(ptySocket[0])
            var setup = ChildSetup(
                plan: plan.mounts, io: io, workingDirectory: plan.process.cwd, command: plan.process.args,
                environment: plan.environment, security: plan.security, seccomp: seccomp)
            setup.joins = joins
            setup.unshareCgroup = plan.unshareCgroup
            setup.timeOffsets = plan.timeOffsets
            setup.personality = plan.personality
            setup.hostname = plan.hostname
            setup.domainname = plan.domainname
            setup.loopback = plan.loopback
            setup.terminal = plan.process.terminal
            setup.windowSize = plan.windowSize
            setup.ptySocket = ptySocket[1]
            setup.rlimits = plan.rlimits
            setup.umask = plan.process.umask.map { mode_t($0) }
            setup.oomScoreAdj = plan.process.oomScoreAdj
            setup.switchTo = plan.switchTo
            setup.useInit = plan.useInit
            setup.keepDescriptors = keepDescriptors
            setup.startFIFO = startFIFO
            setup.createContainerHooks = plan.createContainerHooks
            setup.startContainerHooks = plan.startContainerHooks
            setup.hookState = hookState
            setup.run(channel)
        }
        closeQuietly(ptySocket[1])
        ptySocket[1] = -1

        var master: CInt?
        if plan.process.terminal {
            let fd = urun_recv_fd(ptySocket[0])
            if fd >= 0 { master = fd }
        }
        do throws(UrunError) {
            if startFIFO != nil { try child.awaitReady() } else { try child.awaitExec() }
        } catch {
            if let master { closeQuietly(master) }
            child.reap()
            throw error
        }
        return Launched(child: child, master: master)
    }

    /// A directory image whose files belong to ids the container's user
    /// namespace does not map: overlayfs cannot give such a directory a copy
    /// of its own to create a file in (EOVERFLOW, or EACCES for root's).
    /// Says which directory, which ids, and what to do; nil for other errors.
    static func unmappedOwner(_ error: UrunError, directory: String, map: IDMap) -> UrunError? {
        guard case .kernel(let step, let path?, let errno) = error, errno.rawValue == EOVERFLOW || errno == .permissionDenied,
            step.phase == .mounts, path.hasPrefix("/")
        else { return nil }
        var inside = parentDirectory(of: path)
        while true {
            if let st = fileStatus(directory + inside), !map.mapsHostUID(st.st_uid) || !map.mapsHostGID(st.st_gid) {
                let which = [
                    map.mapsHostUID(st.st_uid) ? nil : "uid \(st.st_uid)", map.mapsHostGID(st.st_gid) ? nil : "gid \(st.st_gid)",
                ].compactMap { $0 }.joined(separator: " and ")
                return .invalid(
                    "image \(printable(directory)): \(inside) belongs to \(which), which the container's user namespace does not map, so urun cannot create \(printable(path)) in it; chown the directory's files to your own ids (or those of your subordinate range), or use an image archive")
            }
            guard inside != "/" else { return nil }
            inside = parentDirectory(of: inside)
        }
    }

    /// The user's ids must exist in the container's user namespace, or
    /// setuid(2) fails there with a bare EINVAL: say which id, what the map
    /// holds, and how to get more, before anything is created.
    static func checkMapped(_ user: ContainerUser, in map: IDMap) throws(UrunError) {
        let mappedUIDs = map.uids.reduce(UInt64(0)) { $0 + UInt64($1.count) }
        let mappedGIDs = map.gids.reduce(UInt64(0)) { $0 + UInt64($1.count) }
        let fix = "ids 0 to \(mappedUIDs - 1) exist (your own id, then the ranges /etc/subuid and /etc/subgid grant you); use a smaller id, or have the admin grant more: usermod --add-subuids/--add-subgids"
        if map.hostUID(for: user.uid) == nil { throw .invalid("-u: uid \(user.uid) is not mapped in the container's user namespace: \(fix)") }
        if let gid = ([user.gid] + user.groups).first(where: { map.hostGID(for: $0) == nil }) {
            throw .invalid("-u: gid \(gid) is not mapped in the container's user namespace: ids 0 to \(mappedGIDs - 1) exist; use a smaller id, or have the admin grant more: usermod --add-subgids")
        }
    }

    /// The helper that connects the container: the one `--network` names
    /// (or fails with the cause); the first that can run for `private`; for
    /// the default the same, or none, said once with the cause.
    static func networkHelper(for spec: ContainerSpec) throws(UrunError) -> NetworkHelper.Kind? {
        let kinds: [NetworkHelper.Kind]
        switch spec.network {
        case .none, .host, .container: return nil
        case .pasta: kinds = [.pasta]
        case .slirp4netns: kinds = [.slirp4netns]
        case .private, .auto: kinds = NetworkHelper.Kind.preferred(publishing: !spec.ports.isEmpty)
        }
        switch NetworkHelper.choose(from: kinds) {
        case .success(let kind): return kind
        case .failure(let reason):
            if spec.network != .auto { throw .invalid("--network \(spec.network.rawValue): \(reason)" + Hint.seeDoctor) }
            if !spec.ports.isEmpty { throw .invalid("publishing ports needs a network: \(reason)" + Hint.seeDoctor) }
            writeQuietly(2, "urun: no network: \(reason); the container has loopback only (--network none says so quietly)\n")
            return nil
        }
    }

    /// After the container's PID 1 has exited: says whether the OOM killer
    /// ended it, and removes its cgroup. Returns whether it was OOM-killed.
    @discardableResult
    public func finish(_ started: StartedContainer, report: Bool = true, reapNetwork: Bool = true) -> Bool {
        let oom = started.cgroup?.oomMessage()
        if report, let oom { writeQuietly(2, "urun: \(oom)\n") }
        started.network?.stop(reap: reapNetwork)
        removeCgroup(started.cgroup)
        return oom != nil
    }

    private func removeCgroup(_ cgroup: ContainerCgroup?) {
        guard let cgroup else { return }
        if (try? cgroup.cgroup.remove()) == nil {
            writeQuietly(2, "urun: could not remove \(cgroup.cgroup); the next urun will retry\n")
        }
    }
}

/// What the child does between the handshake and exec, in order: the one
/// sequence both front ends fill (`urun run`'s options, an OCI bundle's
/// config.json). Runs in the cloned child: root of its new namespaces,
/// single-threaded, no Foundation.
struct ChildSetup {
    let plan: MountPlan
    /// Namespaces to enter by descriptor before anything else (an OCI config's paths).
    var joins: [(fd: CInt, type: CInt)] = []
    /// The cgroup urun placed the child in becomes the container's cgroup root.
    var unshareCgroup = true
    /// A time namespace of its own, with these offsets (an OCI config's).
    var timeOffsets: [(clock: String, secs: Int64, nanosecs: UInt32)]?
    /// personality(2), set last before the exec (an OCI config's LINUX32).
    var personality: UInt?
    var hostname: String?
    var domainname: String?
    /// A new network namespace: its loopback comes up.
    var loopback = false
    let io: ContainerIO
    /// A pty from the container's own devpts, its master sent back on `ptySocket`.
    var terminal = false
    var windowSize: WindowSize?
    var ptySocket: CInt = -1
    var rlimits: [(resource: CInt, soft: UInt64, hard: UInt64)] = []
    var umask: mode_t?
    var oomScoreAdj: Int?
    let workingDirectory: String
    let command: [String]
    let environment: [String]
    let security: SecurityPolicy
    let seccomp: [UInt8]?
    /// The user to become with setuid(2), when the map has subordinate ids.
    var switchTo: ContainerUser?
    var useInit = false
    /// Descriptors 3 to this one are passed to the command (OCI --preserve-fds).
    var keepDescriptors: CInt = 2
    /// An OCI `create`: once the command is found, tell the parent it is ready,
    /// then wait until `start` opens this FIFO (an O_PATH descriptor).
    var startFIFO: CInt?
    /// An OCI config's hooks run by the container itself: createContainer
    /// once its mounts are made (paths still the host's), startContainer
    /// after `start`, just before the command (paths the container's).
    /// `hookState` is the state document they read on stdin.
    var createContainerHooks: [OCIConfig.Hook] = []
    var startContainerHooks: [OCIConfig.Hook] = []
    var hookState: (pid_t, String) -> JSON = { _, _ in JSON.object([]) }

    /// Runs the sequence; a failure goes to the parent on `channel`.
    func run(_ channel: ChildChannel) -> Never {
        do throws(UrunError) {
            try perform(channel)
        } catch {
            channel.fail(error)
        }
    }

    private func perform(_ channel: ChildChannel) throws(UrunError) -> Never {
        if let startFIFO {
            // An OCI init waits, maybe long, before its exec closes what it
            // inherited: whatever urun's caller left open (a socket that tells
            // it urun exited, say) would stay held. Only stdio, the descriptors
            // passed on, and the init's own channels stay.
            let own = Set([channel.reportFD, startFIFO, ptySocket, Explain.descriptor ?? -1] + joins.map(\.fd))
            closeInheritedDescriptors(above: keepDescriptors, keeping: own)
        }
        for join in joins where !Namespaces.isCurrent(join.fd, flags: join.type) {
            try sys(.joinNamespaces, explain: "setns(\(join.fd))") { urun_setns(join.fd, join.type) }
            closeQuietly(join.fd)
        }
        try becomeRootInside()
        if unshareCgroup {
            try sys(.unshareCgroup, explain: "unshare(CLONE_NEWCGROUP)") { urun_unshare(CInt(URUN_CLONE_NEWCGROUP)) }
        }
        if let timeOffsets { try enterTimeNamespace(timeOffsets) }
        // The host's /proc still answers: its "self" is this process's pid out there.
        var link = [CChar](repeating: 0, count: 32)
        let hostPID = readlink("/proc/self", &link, link.count - 1) > 0 ? pid_t(String(cString: link)) ?? 0 : 0
        try plan.apply { () throws(UrunError) in
            for hook in createContainerHooks { try Hooks.run(hook, state: hookState(hostPID, "creating"), stage: "createContainer") }
        }
        if let hostname {
            try sys(.setHostname, explain: "sethostname(\"\(hostname)\")") { urun_sethostname(hostname, hostname.utf8.count) }
        }
        if let domainname {
            try sys(.setDomainname, explain: "setdomainname(\"\(domainname)\")") { urun_setdomainname(domainname, domainname.utf8.count) }
        }
        if loopback {
            try sys(.loopbackUp, explain: "ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP)") { urun_loopback_up() }
        }
        if case .descriptors(let stdin, let stdout, let stderr) = io {
            for (from, to) in [(stdin, CInt(0)), (stdout, 1), (stderr, 2)] where from != to {
                try sys(.setControllingTTY) { dup2(from, to) }
            }
        }
        for limit in rlimits {
            var value = rlimit(rlim_cur: rlim_t(limit.soft), rlim_max: rlim_t(limit.hard))
            try sys(.setRlimits, explain: "setrlimit(\(limit.resource), \(limit.soft), \(limit.hard))") {
                setrlimit(__rlimit_resource_t(UInt32(limit.resource)), &value)
            }
        }
        if let umask { _ = Glibc.umask(umask) }
        if let personality {
            try sys(.setPersonality, explain: "personality(\(personality))") { urun_personality(personality) }
        }
        if let oomScoreAdj {
            try sys(.setOOMScore, explain: "write /proc/self/oom_score_adj \"\(oomScoreAdj)\"", path: "/proc/self/oom_score_adj") {
                urun_write_file("/proc/self/oom_score_adj", String(oomScoreAdj))
            }
        }
        if terminal { try attachPty() }
        try sys(.changeDirectory, explain: "chdir(\"\(workingDirectory)\")", path: workingDirectory) {
            chdir(workingDirectory)
        }
        channel.awaitParent()  // the network helper, started while we mounted
        let confine = { () throws(UrunError) in
            try security.apply(program: seccomp) { () throws(UrunError) in
                if let user = switchTo { try switchUser(uid: user.uid, gid: user.gid, groups: user.keepsHostGroups ? nil : user.groups) }
            }
        }
        if useInit {
            // urun as PID 1 lives under the container's policy too, as docker-init does.
            try confine()
            runAsInit {
                do throws(UrunError) {
                    try execCommand(command, environment: environment)
                } catch {
                    channel.fail(error)
                }
            }
        }
        try execCommand(command, environment: environment, keeping: keepDescriptors, beforeConfine: { () throws(UrunError) in
            guard let fifo = startFIFO else { return }
            channel.ready()
            try waitForStart(fifo)
            for hook in startContainerHooks { try Hooks.run(hook, state: hookState(hostPID, "created"), stage: "startContainer") }
        }, confine: confine)
    }

    /// Offsets can only be written while no process is in the namespace:
    /// unshare makes it for children, the offsets go in, then this process
    /// enters it itself through time_for_children and stays PID 1.
    private func enterTimeNamespace(_ offsets: [(clock: String, secs: Int64, nanosecs: UInt32)]) throws(UrunError) {
        try sys(.enterTimeNamespace, explain: "unshare(CLONE_NEWTIME)") { urun_unshare(CInt(URUN_CLONE_NEWTIME)) }
        if !offsets.isEmpty {
            let lines = offsets.map { "\($0.clock) \($0.secs) \($0.nanosecs)" }
            let text = lines.map { $0 + "\n" }.joined()
            let file = "/proc/self/timens_offsets"
            try sys(.enterTimeNamespace, explain: "write \(file) \"\(lines.joined(separator: "; "))\"", path: file) {
                urun_write_file(file, text)
            }
        }
        let children = "/proc/self/ns/time_for_children"
        let fd = try sys(.enterTimeNamespace, path: children) { open(children, O_RDONLY | O_CLOEXEC) }
        defer { closeQuietly(fd) }
        try sys(.enterTimeNamespace, explain: "setns(time_for_children, CLONE_NEWTIME)") { urun_setns(fd, CInt(URUN_CLONE_NEWTIME)) }
    }

    private func closeInheritedDescriptors(above highest: CInt, keeping own: Set<CInt>) {
        for name in (try? directoryEntries("/proc/self/fd")) ?? [] {
            guard let fd = CInt(name), fd > highest, !own.contains(fd) else { continue }
            close(fd)
        }
    }

    /// Blocks until `start` opens the exec FIFO for reading, then writes the
    /// one byte it reads. Reopened through /proc/self/fd: the FIFO's path is
    /// on the host, out of reach since pivot_root.
    private func waitForStart(_ fifo: CInt) throws(UrunError) {
        let fd = try sys(.waitForStart, explain: "open(exec.fifo, O_WRONLY)  [blocks until start]", path: "exec.fifo") {
            urun_open_mode("/proc/self/fd/\(fifo)", O_WRONLY | O_CLOEXEC, 0)
        }
        var byte: UInt8 = 0
        _ = Glibc.write(fd, &byte, 1)
        closeQuietly(fd)
        closeQuietly(fifo)
    }

    /// A pty from the container's own devpts: its slave becomes /dev/console
    /// and the command's terminal; its master goes back to urun.
    private func attachPty() throws(UrunError) {
        let pty = try ContainerPty.open(size: windowSize)
        let console = "/dev/console"
        let fd = try sys(.bindConsole, path: console) { urun_open_mode(console, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600) }
        closeQuietly(fd)
        try sys(.bindConsole, explain: "mount(\"\(pty.slavePath)\", \"/dev/console\", NULL, MS_BIND)", path: console) {
            mount(pty.slavePath, console, nil, UInt(MS_BIND), nil)
        }
        try sys(.openPty, explain: "sendmsg(SCM_RIGHTS: pty master → urun)") { urun_send_fd(ptySocket, pty.master) }
        closeQuietly(pty.master)
        try pty.attachAsControllingTerminal()
        // The terminal belongs to the user the command runs as, as a login's does.
        if let user = switchTo { fchown(pty.slave, user.uid, user.gid) }
        closeQuietly(pty.slave)
    }
}
