import CUrunSyscalls
import Glibc
import UrunCgroups
import UrunImage
import UrunKernel
import UrunProcess

/// The lifecycle of kept containers: what `create`, `start`, `stop`, `kill`,
/// `pause`, `wait` and `rm` do. Each verb holds the container's verb lock, so
/// two verbs on one container happen one after the other, while verbs on
/// different containers do not wait for each other.
public struct Containers: Sendable {
    public let store: ContainerStore
    /// Global options to pass on to a monitor (`--root DIR`).
    public let globalArguments: [String]

    public init(paths: UrunPaths, globalArguments: [String] = []) {
        store = ContainerStore(paths: paths)
        self.globalArguments = globalArguments
    }

    // MARK: create and start

    /// `urun create`: the container's record and directory, status "created".
    public func create(_ spec: ContainerSpec, name: String?, autoRemove: Bool) throws(UrunError) -> ContainerRecord {
        let image = try spec.resolveImage(cache: store.paths.cache, showProgress: true)
        let spec = spec.resolved(with: image.config)
        // An unknown user or group fails now, not at start.
        _ = try ContainerUser.resolve(spec.user) { image.readFile($0) }.adding(groups: spec.groupAdd) { image.readFile($0) }
        let names = try store.lockNames()
        defer { closeQuietly(names) }
        let chosen = try store.name(requested: name)
        let directory = ContainerDirectory(in: store.dataDirectory)
        try directory.create()
        let record = ContainerRecord(
            id: directory.id, name: chosen, created: .now(), image: image, spec: spec, autoRemove: autoRemove)
        do throws(UrunError) {
            try store.save(record)
            try store.save(ContainerState(), for: record.id)
        } catch {
            try? removeTree(store.runtime(record.id))
            directory.remove()
            throw error
        }
        directory.release()
        return record
    }

    /// How `start` hands the container to whoever asked.
    public enum Attachment: Sendable {
        /// Nobody: the container runs on its own (`run -d`, `start`).
        case none
        /// A client connects before the command runs, so it sees all output
        /// (`run`, `start -a`). `stdin`: a descriptor of the client's that
        /// becomes the container's own stdin (`-i` without a terminal), so the
        /// container takes from it exactly what it reads, no more.
        case client(stdin: CInt?)
    }

    /// `urun start`: a monitor of its own starts the container; returns once
    /// the command runs, with the attach connection when one was asked for.
    /// Starting a running container does nothing, as in docker.
    public func start(_ record: ContainerRecord, attach: Attachment = .none) throws(UrunError) -> CInt? {
        let lock = try store.lockVerbs(record.id)
        defer { closeQuietly(lock) }
        try requireExisting(record)
        guard !store.isBeingRemoved(record.id) else {
            // The runtime directory is the removal's to delete: the one lockVerbs just made goes too.
            try? removeTree(store.runtime(record.id))
            throw .invalid("container \(record.name) is being removed; urun rm \(record.name) finishes it")
        }
        let state = store.state(record.id)
        guard !state.status.isActive else { return nil }

        var report: [CInt] = [-1, -1]
        try sys(.superviseContainer) { urun_pipe2(&report, O_CLOEXEC) }
        var arguments = ["urun"] + globalArguments + ["monitor"]
        if case .client = attach { arguments.append("--attach") }
        arguments.append(record.id)
        let monitor = fork()
        if monitor == 0 {
            // The monitor: its own session, no terminal, the report pipe on fd 3.
            setsid()
            let null = open("/dev/null", O_RDWR)
            for fd in CInt(0)...2 { dup2(null, fd) }
            dup2(report[1], 3)
            _ = urun_close_range(4, UInt32.max, 0)
            withCStrings(arguments) { argv in _ = execv("/proc/self/exe", argv) }
            _exit(127)
        }
        closeQuietly(report[1])
        defer { closeQuietly(report[0]) }
        guard monitor > 0 else { throw .kernel(.superviseContainer, path: nil, .current) }

        var client: CInt?
        if case .client(let stdin) = attach {
            let heard = Channel.receive(from: report[0])
            guard heard == .listening else { throw failure(heard, record) }
            let socket = try connectAttach(record.id)
            client = socket
            // The first byte a starting client sends says whether it hands its stdin over.
            let sent = stdin.map { urun_send_fd(socket, $0) } ?? (write(socket, [UInt8(0)], 1) == 1 ? 0 : -1)
            if sent != 0 {
                closeQuietly(socket)
                throw .kernel(.superviseContainer, path: store.attachSocket(record.id), .current)
            }
        }
        let heard = Channel.receive(from: report[0])
        guard heard == .started else {
            if let client { closeQuietly(client) }
            throw failure(heard, record)
        }
        return client
    }

    /// After taking the verb lock: the container may have been removed while
    /// we waited for it (the lock file we made is then the only trace: gone too).
    private func requireExisting(_ record: ContainerRecord) throws(UrunError) {
        guard store.exists(record.id) else {
            try? removeTree(store.runtime(record.id))
            throw .invalid("No such container: \(record.name)")
        }
    }

    /// What the monitor reported instead of what was expected: why, or nothing (it died).
    private func failure(_ heard: ChannelMessage?, _ record: ContainerRecord) -> UrunError {
        if case .failed(let error) = heard { return error }
        return .invalid("container \(record.name) did not start (its monitor exited)")
    }

    /// Connects to the container's attach socket.
    public func connectAttach(_ id: String) throws(UrunError) -> CInt {
        let runtime = try sys(.superviseContainer, path: store.runtime(id)) {
            open(store.runtime(id), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        defer { closeQuietly(runtime) }
        for _ in 0..<500 {
            let fd = urun_unix_connect(runtime, "attach.sock")
            if fd >= 0 { return fd }
            guard errno == ENOENT || errno == ECONNREFUSED else { break }
            usleep(2000)
        }
        throw .kernel(.superviseContainer, path: store.attachSocket(id), .current)
    }

    // MARK: signals

    /// The running container's PID 1, by a pidfd that cannot name a recycled pid.
    public func pidfd(_ record: ContainerRecord) -> CInt? {
        let state = store.state(record.id)
        guard state.status.isUp else { return nil }
        return ProcessIdentity(pid: state.pid, startTime: state.pidStartTime).open()
    }

    /// `urun kill`: a signal to the container's PID 1. SIGKILL goes to every
    /// process of its cgroup at once when it has one.
    /// A fatal signal (SIGKILL, or the container's stop signal) ends its
    /// restart policy until the next start, as docker's kill does; any other
    /// (SIGHUP to reload, SIGUSR1) leaves it in place.
    public func kill(_ record: ContainerRecord, signal: CInt) throws(UrunError) {
        guard let pidfd = pidfd(record) else { throw .invalid("container \(record.name) is not running") }
        defer { closeQuietly(pidfd) }
        if signal == SIGKILL || signal == record.spec.stopSignal.flatMap(parseSignal) ?? SIGTERM {
            store.markStoppedByUser(record.id)
        }
        let state = store.state(record.id)
        if signal == SIGKILL, let path = state.cgroup, (try? Cgroup(path: path).kill()) != nil { return }
        try sys(.superviseContainer, path: record.name) { urun_pidfd_send_signal(pidfd, signal) }
    }

    /// `urun stop`: the stop signal, then SIGKILL after `timeout` seconds;
    /// returns once the monitor has recorded the exit, or fails saying what
    /// still runs: it never reports a container stopped that is not.
    public func stop(_ record: ContainerRecord, timeout: Int?) throws(UrunError) {
        let lock = try store.lockVerbs(record.id)
        defer { closeQuietly(lock) }
        var state = store.state(record.id)
        guard let pidfd = pidfd(record) else {
            // Supervised, but PID 1 is not on record: only the sure way is left.
            if store.isSupervised(record.id) { try killAll(record) }
            return
        }
        defer { closeQuietly(pidfd) }
        if state.status == .paused, let path = state.cgroup {
            try Cgroup(path: path).thaw()
            state.status = .running
            try store.save(state, for: record.id)
        }
        let signal = record.spec.stopSignal.flatMap(parseSignal) ?? SIGTERM
        _ = urun_pidfd_send_signal(pidfd, signal)
        var exited = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        let seconds = timeout ?? record.spec.stopTimeout ?? 10
        if poll(&exited, 1, CInt(clamping: max(0, seconds) * 1000)) == 0 {
            try? kill(record, signal: SIGKILL)
        }
        waitForMonitor(record.id)
        if store.isSupervised(record.id) { try killAll(record) }
        // --rm: the monitor left the removal to this verb, which holds the lock.
        if record.autoRemove {
            try store.markRemoving(record.id)
            try store.remove(record.id)
        }
    }

    /// Ends every process of the container however its state reads: PID 1
    /// (its PID namespace dies with it), its cgroup, and, if a supervisor still
    /// holds the container then, the supervisor (PID 1 dies with it too:
    /// PR_SET_PDEATHSIG). Fails if something still holds the container after that.
    func killAll(_ record: ContainerRecord) throws(UrunError) {
        let state = store.state(record.id)
        // Between restarts nothing runs but the monitor, waiting: it ends on SIGTERM.
        if state.status == .restarting, let fd = state.monitor?.open() {
            _ = urun_pidfd_send_signal(fd, SIGTERM)
            closeQuietly(fd)
            waitForMonitor(record.id, seconds: 5)
        }
        if let path = state.cgroup { try? Cgroup(path: path).thaw() }
        if state.pid > 0, let fd = ProcessIdentity(pid: state.pid, startTime: state.pidStartTime).open() {
            _ = urun_pidfd_send_signal(fd, SIGKILL)
            closeQuietly(fd)
        }
        if let path = state.cgroup { try? Cgroup(path: path).kill() }
        waitForMonitor(record.id, seconds: 10)
        if store.isSupervised(record.id), let fd = state.monitor?.open() {
            _ = urun_pidfd_send_signal(fd, SIGKILL)
            closeQuietly(fd)
            waitForMonitor(record.id, seconds: 5)
        }
        guard !store.isSupervised(record.id) else {
            throw .invalid("container \(record.name) could not be stopped: a process that urun did not record still holds it (pid \(state.monitor.map { String($0.pid) } ?? "unknown"))")
        }
    }

    /// Waits until nobody supervises the container any more (its exit is recorded).
    public func waitForMonitor(_ id: String, seconds: Int = 30) {
        for _ in 0..<(seconds * 200) where store.isSupervised(id) { usleep(5000) }
    }

    /// `urun wait`: blocks until the container stops; its exit code (nil: unknown).
    public func wait(_ record: ContainerRecord) -> Int32? {
        if let pidfd = pidfd(record) {
            var exited = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            while poll(&exited, 1, -1) < 0 && errno == EINTR {}
            closeQuietly(pidfd)
        }
        waitForMonitor(record.id, seconds: 3600)
        return store.state(record.id).exitCode
    }

    // MARK: freezer

    /// `urun pause` / `unpause`: the cgroup v2 freezer.
    public func setPaused(_ record: ContainerRecord, _ paused: Bool) throws(UrunError) {
        let lock = try store.lockVerbs(record.id)
        defer { closeQuietly(lock) }
        var state = store.state(record.id)
        switch (state.status, paused) {
        case (.running, true), (.paused, false): break
        case (.paused, true): throw .invalid("container \(record.name) is already paused")
        case (.running, false): throw .invalid("container \(record.name) is not paused")
        default: throw .invalid("container \(record.name) is not running")
        }
        guard let path = state.cgroup else {
            throw .invalid(
                "pausing needs the container in a cgroup of its own, and it has none: urun's cgroup is not delegated to you; run urun inside \"systemd-run --user --scope -p Delegate=yes ...\""
            )
        }
        let cgroup = Cgroup(path: path)
        if paused { try cgroup.freeze() } else { try cgroup.thaw() }
        state.status = paused ? .paused : .running
        try store.save(state, for: record.id)
    }

    // MARK: removal

    /// `urun rm`: refuses a running container unless `force`, which kills it
    /// first. The container is marked as being removed before anything else
    /// (ContainerStore.markRemoving), so a `start` waiting for the lock finds
    /// it gone, and an `rm` killed half-way leaves it for the next `rm` to finish.
    public func remove(_ record: ContainerRecord, force: Bool) throws(UrunError) {
        let lock = try store.lockVerbs(record.id)
        defer { closeQuietly(lock) }
        try requireExisting(record)
        let state = store.state(record.id)
        if state.status.isActive {
            guard force else {
                throw .invalid("cannot remove container \(record.name): it is \(state.status.rawValue); stop it first or use rm -f")
            }
        }
        try store.markRemoving(record.id)
        // Whatever may still run: a running container (-f), one an earlier
        // rm -f marked but did not kill, an orphan its supervisor lost.
        if store.isSupervised(record.id) || state.pid > 0 { try killAll(record) }
        // A cgroup that its monitor could not remove (still busy then) goes now.
        if let path = state.cgroup { try? Cgroup(path: path).remove() }
        try store.remove(record.id)
    }

    /// Kept containers started with --rm whose monitor died before removing
    /// them. A container another urun holds the verb lock of is left to it.
    public func collectGarbage() {
        for record in store.all() where record.autoRemove && !store.isSupervised(record.id) {
            guard store.state(record.id).status == .exited, let lock = try? store.lockVerbs(record.id, wait: false) else { continue }
            defer { closeQuietly(lock) }
            if store.exists(record.id), (try? store.markRemoving(record.id)) != nil { try? store.remove(record.id) }
        }
    }
}
