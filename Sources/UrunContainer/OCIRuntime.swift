import CUrunSyscalls
import Glibc
import UrunCgroups
import UrunKernel
import UrunOCI
import UrunProcess
import UrunSecurity
import UrunUserNS

/// urun as an OCI runtime: runc's verbs over bundles, for engines (podman,
/// containerd) that drive a runtime through its command line.
///
///     <root>/<id>/state.json   the bundle, PID 1 and its start time, created, cgroup, annotations
///                 exec.fifo    until `start`: the init waits on it, ready to exec
///
/// `create` leaves the container's init set up and blocked on the FIFO and
/// returns; the init then belongs to whoever called urun (conmon, the
/// containerd shim), as runc's does. `start` opens the FIFO, which lets it
/// exec. Status comes from the process itself (alive, and the same process:
/// its start time), never from what a file says.
public struct OCIRuntime {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// What `create` takes besides the bundle.
    public struct CreateOptions: Sendable {
        public var pidFile: String?
        public var consoleSocket: String?
        public var preserveFDs: Int32 = 0
        /// The caller is not root: a config without a user namespace gets one.
        public var rootless = getuid() != 0
        /// false (--cgroup-manager=disabled): the container gets no cgroup, and
        /// its limits are not applied (said on stderr, as a warning).
        public var cgroups = true
        public init() {}
    }

    /// What is kept of a container between verbs.
    struct Record {
        var id: String
        var bundle: String
        var pid: Int32
        var startTime: UInt64
        var created: Timestamp
        var annotations: [String: String]
        var cgroup: String?
        var poststop: [OCIConfig.Hook]

        var json: JSON {
            var object = JSON.object([
                ("id", .string(id)), ("bundle", .string(bundle)), ("pid", .int(pid)), ("startTime", .int(startTime)),
                ("created", .string(created.rfc3339)),
                ("annotations", .object(annotations.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ])
            if let cgroup { object["cgroup"] = .string(cgroup) }
            if !poststop.isEmpty {
                object["poststop"] = .array(poststop.map { hook in
                    var h = JSON.object([("path", .string(hook.path)), ("args", .array(hook.args.map(JSON.string))), ("env", .array(hook.env.map(JSON.string)))])
                    if let timeout = hook.timeout { h["timeout"] = .int(timeout) }
                    return h
                })
            }
            return object
        }

        init(id: String, bundle: String, pid: Int32, startTime: UInt64, created: Timestamp, annotations: [String: String], cgroup: String?, poststop: [OCIConfig.Hook]) {
            (self.id, self.bundle, self.pid, self.startTime, self.created) = (id, bundle, pid, startTime, created)
            (self.annotations, self.cgroup, self.poststop) = (annotations, cgroup, poststop)
        }

        init?(json: JSON) {
            guard let id = json["id"]?.string, let bundle = json["bundle"]?.string, let pid = json["pid"]?.integer(Int32.self),
                let startTime = json["startTime"]?.uint64, let created = json["created"]?.string.flatMap(Timestamp.init(rfc3339:))
            else { return nil }
            self.init(
                id: id, bundle: bundle, pid: pid, startTime: startTime, created: created,
                annotations: (json["annotations"]?.members ?? []).reduce(into: [:]) { $0[$1.0] = $1.1.string ?? "" },
                cgroup: json["cgroup"]?.string,
                poststop: (json["poststop"]?.array ?? []).compactMap { h in
                    h["path"]?.string.map { OCIConfig.Hook(path: $0, args: h["args"]?.strings ?? [], env: h["env"]?.strings ?? [], timeout: h["timeout"]?.int) }
                })
        }
    }

    func directory(_ id: String) -> String { root + "/" + id }
    func fifo(_ id: String) -> String { directory(id) + "/exec.fifo" }

    /// runc's rule for ids: letters, digits and `_+-.`, no path of any kind.
    static func checkID(_ id: String) throws(UrunError) {
        guard !id.isEmpty, id.utf8.count <= 1024, id != ".", id != "..",
            id.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_+-.".unicodeScalars.contains($0)) })
        else { throw .invalid("invalid container id \"\(printable(id, limit: 80))\": use letters, digits and _ + - .") }
    }

    func record(_ id: String) throws(UrunError) -> Record {
        try Self.checkID(id)
        guard let text = try? readText(directory(id) + "/state.json") else {
            throw .invalid("container \"\(id)\" does not exist")
        }
        guard let json = try? JSON(parsing: text), let record = Record(json: json) else {
            throw .invalid("container \"\(id)\": its state file is damaged")
        }
        return record
    }

    /// creating (no state yet), created, running, paused or stopped.
    func status(_ record: Record) -> String {
        guard Self.isAlive(pid: record.pid, startTime: record.startTime) else { return "stopped" }
        if access(fifo(record.id), F_OK) == 0 { return "created" }
        if let path = record.cgroup, Cgroup(path: path).isFrozen { return "paused" }
        return "running"
    }

    /// The process is there, is the one recorded (its start time), and is no zombie.
    static func isAlive(pid: Int32, startTime: UInt64) -> Bool {
        guard pid > 0, let stat = try? readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let start = UInt64(fields[19]) else { return false }
        return start == startTime && fields[0] != "Z" && fields[0] != "X"
    }

    /// The runtime-spec state of `id`.
    public func state(_ id: String) throws(UrunError) -> JSON {
        let record = try record(id)
        return OCIDocuments.state(
            id: id, status: status(record), pid: record.pid, bundle: record.bundle, annotations: record.annotations,
            created: record.created, owner: Self.owner(root))
    }

    /// Every container's state, by id.
    public func list() -> [JSON] {
        ((try? directoryEntries(root)) ?? []).sorted().compactMap { try? state($0) }
    }

    static func owner(_ path: String) -> String? {
        guard let st = fileStatus(path) else { return nil }
        let entries = (try? readText("/etc/passwd")).map(PasswdEntry.parse) ?? []
        return entries.first { $0.uid == st.st_uid }?.name ?? String(st.st_uid)
    }

    // MARK: create, start

    /// `create`: the container set up and waiting for `start`; returns its PID 1.
    @discardableResult
    public func create(_ id: String, bundle: String, options: CreateOptions) throws(UrunError) -> Int32 {
        try make(id, bundle: bundle, options: options, foreground: false).pid
    }

    /// The container made, its init waiting on the FIFO. `foreground` (`run`):
    /// the init stays urun's child and dies with it; its pty master is kept.
    func make(_ id: String, bundle bundleArgument: String, options: CreateOptions, foreground: Bool) throws(UrunError) -> CreatedBundle {
        try Self.checkID(id)
        try makeDirectories(root, mode: 0o700)
        let bundle = try UrunPaths.absolute(bundleArgument)
        let config = try OCIConfig(json: try readFile(bundle + "/config.json"), source: bundle + "/config.json")
        var plan = try ContainerPlan(config, bundle: bundle, rootless: options.rootless)
        if !options.cgroups {
            if !plan.resources.isEmpty { plan.warnings.append("linux.resources are not applied: --cgroup-manager=disabled") }
            plan.resources = []
            plan.cgroupsPath = nil
        }
        if plan.process.terminal && options.consoleSocket == nil && !foreground {
            throw .invalid("config.json: process.terminal: a detached container's terminal needs --console-socket")
        }
        let directory = directory(id)
        if mkdir(directory, 0o700) != 0 {
            throw errno == EEXIST ? .invalid("container \"\(id)\" already exists") : .kernel(.createContainerDir, path: directory, .current)
        }
        do throws(UrunError) {
            for warning in plan.warnings { writeQuietly(2, "urun: \(warning)\n") }
            let created = try Launcher(paths: UrunPaths(cache: root + "/.cache", data: root, runtime: root))
                .createBundle(plan, id: id, fifo: fifo(id), options: options, foreground: foreground, hooks: config.hooks) { pid, status in
                    OCIDocuments.state(id: id, status: status, pid: pid, bundle: bundle, annotations: config.annotations, created: nil)
                }
            let record = Record(
                id: id, bundle: bundle, pid: created.pid, startTime: created.startTime, created: .now(),
                annotations: config.annotations, cgroup: created.cgroup, poststop: config.hooks.poststop)
            do throws(UrunError) {
                try writeFileAtomically(directory + "/state.json", record.json.serialized() + "\n", mode: 0o600)
                if let pidFile = options.pidFile { try writeFileAtomically(try UrunPaths.absolute(pidFile), "\(created.pid)", mode: 0o644) }
            } catch {
                created.kill()
                throw error
            }
            return created
        } catch {
            try? removeTree(directory)
            throw error
        }
    }

    /// `start`: opens the FIFO the init waits on, which lets it exec.
    public func start(_ id: String) throws(UrunError) {
        let record = try record(id)
        let status = status(record)
        guard status == "created" else { throw .invalid("cannot start container \"\(id)\": it is \(status), not created") }
        // Non-blocking: a reader that never blocks, should the init be gone.
        let fd = try sys(.waitForStart, path: fifo(id)) { urun_open_mode(fifo(id), O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0) }
        defer { closeQuietly(fd) }
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        for _ in 0..<100 {
            if poll(&ready, 1, 100) == 1 { break }
            guard Self.isAlive(pid: record.pid, startTime: record.startTime) else {
                throw .invalid("cannot start container \"\(id)\": its init is gone")
            }
        }
        var byte: UInt8 = 0
        guard read(fd, &byte, 1) == 1 else { throw .invalid("cannot start container \"\(id)\": its init did not answer") }
        unlink(fifo(id))
        for hook in (try? OCIConfig(json: try readFile(record.bundle + "/config.json"), source: "config.json"))?.hooks.poststart ?? [] {
            try Hooks.run(hook, state: try state(id), stage: "poststart")
        }
    }

    // MARK: signals, removal

    /// `kill`: a signal to PID 1, or with `all` to every process of the container.
    public func kill(_ id: String, signal: CInt, all: Bool) throws(UrunError) {
        let record = try record(id)
        let status = status(record)
        guard status != "stopped" else {
            if all { return }
            throw .invalid("cannot kill container \"\(id)\": it is stopped")
        }
        if all {
            if let path = record.cgroup, signal == SIGKILL, (try? Cgroup(path: path).kill()) != nil { return }
            for pid in processes(record) { Glibc.kill(pid, signal) }
            return
        }
        guard let pidfd = ProcessIdentity(pid: record.pid, startTime: record.startTime).open() else { return }
        defer { closeQuietly(pidfd) }
        try sys(.superviseContainer, path: id) { urun_pidfd_send_signal(pidfd, signal) }
    }

    /// The container's processes: its cgroup's, or those in its init's mount
    /// namespace, the one namespace a container always has of its own (a
    /// pod's containers share a PID namespace; `exec` joins the mount one).
    func processes(_ record: Record) -> [pid_t] {
        if let path = record.cgroup, let pids = try? Cgroup(path: path).processes() { return pids }
        guard Self.isAlive(pid: record.pid, startTime: record.startTime) else { return [] }
        var target = stat()
        guard stat("/proc/\(record.pid)/ns/mnt", &target) == 0 else { return [record.pid] }
        return ((try? directoryEntries("/proc")) ?? []).compactMap { pid_t($0) }.filter { pid in
            var st = stat()
            return stat("/proc/\(pid)/ns/mnt", &st) == 0 && st.st_ino == target.st_ino && st.st_dev == target.st_dev
        }
    }

    /// `ps`: the container's process ids.
    public func processes(_ id: String) throws(UrunError) -> [pid_t] { processes(try record(id)) }

    /// `delete`: a stopped (or created) container's state; with `force`, a running one killed first.
    public func delete(_ id: String, force: Bool) throws(UrunError) {
        let record: Record
        do {
            record = try self.record(id)
        } catch {
            // An engine cleaning up what may never have been made.
            if force, access(directory(id), F_OK) != 0 { return }
            if force { try? removeTree(directory(id)); return }
            throw error
        }
        let status = status(record)
        if status == "running" || status == "paused" {
            guard force else { throw .invalid("cannot delete container \"\(id)\" that is not stopped: it is \(status)") }
        }
        if status != "stopped" {
            if let path = record.cgroup { try? Cgroup(path: path).thaw() }
            try? kill(id, signal: SIGKILL, all: true)
            if let pidfd = ProcessIdentity(pid: record.pid, startTime: record.startTime).open() {
                _ = urun_pidfd_send_signal(pidfd, SIGKILL)
                var gone = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                _ = poll(&gone, 1, 5000)
                closeQuietly(pidfd)
            }
        }
        if let path = record.cgroup { try? Cgroup(path: path).remove() }
        for hook in record.poststop {
            try? Hooks.run(hook, state: OCIDocuments.state(id: id, status: "stopped", pid: 0, bundle: record.bundle, annotations: record.annotations, created: record.created), stage: "poststop")
        }
        try removeTree(directory(id))
    }

    // MARK: run

    /// `run`: create and start; in the foreground, wait for PID 1 and return
    /// its exit status (128+N for a signal), removing the container after.
    public func run(_ id: String, bundle: String, options: CreateOptions, detach: Bool) throws(UrunError) -> Int32 {
        if detach {
            try create(id, bundle: bundle, options: options)
            try start(id)
            return 0
        }
        let blocked = blockSupervisedSignals()
        let created = try make(id, bundle: bundle, options: options, foreground: true)
        do throws(UrunError) {
            try start(id)
        } catch {
            created.kill()
            try? delete(id, force: true)
            throw error
        }
        let supervisor = try Supervisor(pid: created.pid, pidfd: created.pidfd, blockedSignals: blocked, master: created.master)
        let status = supervisor.run()
        try? delete(id, force: true)
        return status.code
    }

    // MARK: exec

    /// What `exec` takes: the process (a --process file, or arguments and
    /// the flags that adjust them) and how to hand it over.
    public struct ExecOptions: Sendable {
        public var process: OCIProcess
        public var detach = false
        public var pidFile: String?
        public var consoleSocket: String?
        public var preserveFDs: Int32 = 0

        public init(process: OCIProcess) {
            self.process = process
        }
    }

    /// `exec`: a new process in the running container, under the container's
    /// seccomp profile and the process's own capabilities. Detached, urun
    /// returns once it runs (it is reparented to the engine's subreaper);
    /// else its exit status.
    public func exec(_ id: String, _ options: ExecOptions) throws(UrunError) -> Int32 {
        let record = try record(id)
        let status = status(record)
        guard status == "running" else { throw .invalid("cannot exec in container \"\(id)\": it is \(status)") }
        let process = options.process
        if process.terminal && options.detach && options.consoleSocket == nil {
            throw .invalid("exec: a detached process's terminal needs --console-socket")
        }
        let config = try OCIConfig(json: try readFile(record.bundle + "/config.json"), source: record.bundle + "/config.json")
        let security = try ContainerPlan.security(for: process, seccomp: config.linux.seccomp, field: "exec: process")
        let seccomp = try security.seccompProgram(cache: root + "/.cache", singleMapping: false)
        guard let pidfd = ProcessIdentity(pid: record.pid, startTime: record.startTime).open() else {
            throw .invalid("cannot exec in container \"\(id)\": it is stopped")
        }
        defer { closeQuietly(pidfd) }
        let cgroupFD: CInt = record.cgroup.map { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } ?? -1
        defer { closeQuietly(cgroupFD) }
        // The pid file and the console socket are host paths: their directories
        // are opened now, before urun enters the container's mount namespace.
        let pidFile = try options.pidFile.map { (path) throws(UrunError) in try HostPath(path) }
        let console = try options.consoleSocket.map { (path) throws(UrunError) in try HostPath(path) }

        var environment = process.env
        if !environment.contains(where: { $0.hasPrefix("HOME=") }) {
            let home = ContainerUser.readInImage("/proc/\(record.pid)/root", "/etc/passwd").flatMap { text in
                PasswdEntry.parse(text).first { $0.uid == process.uid }?.home
            }
            environment.append("HOME=" + (home ?? "/"))
        }
        var joined = JoinedProcess(
            command: process.args, environment: environment, workingDirectory: process.cwd, security: security, seccomp: seccomp)
        if process.uid != 0 || process.gid != 0 || !process.additionalGids.isEmpty {
            joined.switchTo = ContainerUser(uid: process.uid, gid: process.gid, home: "/", groups: process.additionalGids)
        }
        joined.tty = process.terminal
        joined.windowSize = process.consoleSize.map { WindowSize(rows: $0.height, columns: $0.width) }
            ?? (options.detach ? nil : WindowSize.of(0) ?? WindowSize.of(1))
        joined.rlimits = process.rlimits.compactMap { limit in
            OCIProcess.rlimitNames.firstIndex(of: limit.type).map { (CInt($0), limit.soft, limit.hard) }
        }
        joined.keepDescriptors = 2 + options.preserveFDs
        let blocked = blockSupervisedSignals()
        let started = try joined.start(joining: pidfd, pid: record.pid, name: id, cgroupFD: cgroupFD)
        var master = started.master
        if let fd = master, let console {
            try console.sendConsole(fd)
            closeQuietly(fd)
            master = nil
        }
        try pidFile?.write("\(started.pid)")
        if options.detach {
            if let master { closeQuietly(master) }
            return 0
        }
        let supervisor = try Supervisor(pid: started.pid, pidfd: started.pidfd, blockedSignals: blocked, master: master)
        return supervisor.run().code
    }

    // MARK: pause, resume, update

    public func setPaused(_ id: String, _ paused: Bool) throws(UrunError) {
        let record = try record(id)
        let status = status(record)
        guard status == (paused ? "running" : "paused") else {
            throw .invalid("cannot \(paused ? "pause" : "resume") container \"\(id)\": it is \(status)")
        }
        guard let path = record.cgroup else {
            throw .invalid("cannot \(paused ? "pause" : "resume") container \"\(id)\": it has no cgroup of its own (the freezer needs one: give it a delegated linux.cgroupsPath)")
        }
        if paused { try Cgroup(path: path).freeze() } else { try Cgroup(path: path).thaw() }
    }

    /// `update --resources`: new limits written to the container's cgroup.
    public func update(_ id: String, resources: OCIResources) throws(UrunError) {
        let record = try record(id)
        guard let path = record.cgroup else {
            throw .invalid("cannot update container \"\(id)\": it has no cgroup of its own")
        }
        let cgroup = Cgroup(path: path)
        for setting in resources.settings { try cgroup.write(setting.file, setting.value, step: .writeLimit) }
    }
}

/// A path on the host, its directory opened while urun still sees the
/// host's files: written or connected to once urun has entered a container's
/// mount namespace.
struct HostPath {
    let directory: CInt
    let name: String
    let shown: String

    init(_ path: String) throws(UrunError) {
        shown = try UrunPaths.absolute(path)
        name = baseName(of: shown)
        let parent = parentDirectory(of: shown)
        directory = try sys(.writeFile, path: parent) { open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    }

    /// Replaces the file atomically (a pid file is read whole or not at all).
    func write(_ text: String) throws(UrunError) {
        let temporary = name + ".tmp-\(getpid())"
        let fd = try sys(.writeFile, path: shown) { urun_openat_mode(directory, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        defer { closeQuietly(fd) }
        try writeAll(fd, text, path: shown)
        try sys(.writeFile, path: shown) { renameat(directory, temporary, directory, name) }
    }

    func sendConsole(_ master: CInt) throws(UrunError) {
        let socket = try sys(.sendConsole, path: shown) { urun_unix_connect(directory, name) }
        defer { closeQuietly(socket) }
        try sys(.sendConsole, explain: "sendmsg(SCM_RIGHTS: pty master → \(shown))", path: shown) { urun_send_fd(socket, master) }
    }
}

/// A bundle's container, made and waiting for `start`.
struct CreatedBundle {
    let pid: Int32
    let pidfd: CInt
    let startTime: UInt64
    let cgroup: String?
    /// The pty master, kept for a foreground `run` with a terminal.
    let master: CInt?

    func kill() {
        _ = urun_pidfd_send_signal(pidfd, SIGKILL)
    }
}
