import CUrunSyscalls
import Glibc
import UrunImage
import UrunKernel
import UrunProcess

/// The supervisor of a detached container: urun itself, run again as
/// `urun monitor ID` in a session of its own (like conmon; not a daemon, one
/// per container, gone when its container is). It holds the container's
/// lock, starts it, writes its output to container.log, serves `urun attach`
/// on a unix socket, runs its health check, records its exit status and
/// finish time, removes its cgroup, starts it again as --restart says, and
/// removes the whole container if it was started with --rm.
public struct Monitor {
    let store: ContainerStore
    let id: String
    /// urun's global options (`--root DIR`), for the `urun exec` of a health check.
    let globalArguments: [String]

    public init(store: ContainerStore, id: String, globalArguments: [String] = []) {
        self.store = store
        self.id = id
        self.globalArguments = globalArguments
    }

    /// Starts the container and reports on `report` (a pipe from the urun
    /// that asked, spoken as a `Channel`): `.listening` (with `waitForClient`,
    /// once the attach socket is ready), then `.started`, or `.failed` and
    /// why. Then supervises it, restarting it as its policy says.
    public func run(report: CInt, waitForClient: Bool) -> Int32 {
        let record: ContainerRecord
        let image: Image
        let directory = ContainerDirectory(in: store.dataDirectory, id: id)
        let launcher = Launcher(paths: store.paths)
        var listener: CInt = -1
        var firstClient: CInt = -1
        var handedStdin: CInt?
        var state = store.state(id)
        do throws(UrunError) {
            record = try store.record(id)
            // The monitor goes on record before the container exists: a state
            // that cannot be written (a full disk) fails the start here, with
            // nothing running, and `rm -f` can always find the supervisor.
            state.monitor = ProcessIdentity.of(getpid())
            state.restartCount = 0
            store.forgetStoppedByUser(id)
            try store.save(state, for: id)
            listener = try listen()
            if waitForClient {
                // The client sees the output from the first byte: it connects before the command runs.
                Channel.send(.listening, on: report)
                firstClient = accept(listener, seconds: 10)
                handedStdin = receiveStdin(from: firstClient)
            }
            image = try Self.image(for: record, cache: store.paths.cache)
        } catch {
            return failed(error, report: report, listener: listener, directory: directory)
        }

        var reportTo: CInt? = report
        var clients: [CInt] = []
        var quickRestarts = 0
        while true {
            var io = MonitorIO()
            var started: StartedContainer?
            do throws(UrunError) {
                io = try MonitorIO(spec: record.spec, stdin: handedStdin)
                handedStdin = nil
                let container = try launcher.start(record.spec, image: image, directory: directory, io: io.childIO, ephemeral: false)
                started = container
                store.resetHealth(id)
                state.status = .running
                state.pid = container.pid
                state.pidStartTime = ProcessIdentity.of(container.pid)?.startTime ?? 0
                state.startedAt = container.startedAt
                state.finishedAt = nil
                state.exitCode = nil
                state.oomKilled = false
                state.cgroup = container.cgroup?.cgroup.path
                state.ports = container.network?.ports.map(\.description) ?? []
                // A container urun cannot see must not run: if its state cannot be
                // written, it is killed before anyone is told it started.
                try store.save(state, for: id)
            } catch {
                if let container = started {
                    _ = urun_pidfd_send_signal(container.pidfd, SIGKILL)
                    var status: CInt = 0
                    while waitpid(container.pid, &status, 0) < 0 && errno == EINTR {}
                    launcher.finish(container, report: false)
                }
                guard reportTo == nil else { return failed(error, report: report, listener: listener, directory: directory) }
                // A restart that cannot start ends the restarts; its log says why.
                if let log = try? ContainerLog(path: store.logFile(id)) {
                    Array("urun: restart failed: \(error)\n".utf8).withUnsafeBytes { log.append($0, stream: "stderr") }
                    log.flush()
                }
                state.recordExit(code: error.exitCode)
                try? store.save(state, for: id)
                break
            }
            guard let started else { return 125 }
            io.closeChildEnds()
            if let reportTo {
                Channel.send(.started, on: reportTo)
                closeQuietly(reportTo)
                // The monitor lives as long as its container: give back the pages
                // that start-up touched; the relay loop refaults the few it needs.
                urun_drop_executable_pages()
            }
            reportTo = nil

            let log = try? ContainerLog(path: store.logFile(id))
            let status: ExitStatus
            (status, clients) = serve(started, io: &io, log: log, listener: listener,
                                      firstClient: firstClient, health: record.spec.healthCheck)
            firstClient = -1
            log?.flush()

            state.recordExit(code: status.code)
            state.oomKilled = launcher.finish(started, report: false)
            // Nothing is left running if this fails: `ps` then shows the exit as unknown.
            try? store.save(state, for: id)

            // `stop` and `rm` hold the verb lock while the container ends, and
            // `kill` with a fatal signal leaves a mark: an exit they asked for is final.
            let verb = try? store.lockVerbs(id, wait: false)
            if let verb { closeQuietly(verb) }
            let stoppedByUser = verb == nil || store.wasStoppedByUser(id)
            let ranLong = state.startedAt.map { Timestamp.now().seconds - $0.seconds >= 10 } ?? false
            quickRestarts = ranLong ? 0 : quickRestarts + 1
            guard record.spec.restart.restarts(afterExit: status.code, restarts: state.restartCount, stoppedByUser: stoppedByUser) else { break }
            // Clients attached to this run learn how it ended; they may attach to the next.
            sendExitCode(status.code, to: clients)
            clients = []
            state.status = .restarting
            try? store.save(state, for: id)
            guard backOff(milliseconds: RestartPolicy.delayMilliseconds(beforeRestart: quickRestarts)) else {
                state.status = .exited
                try? store.save(state, for: id)
                break
            }
            state.restartCount += 1
        }
        closeQuietly(listener)
        state.monitor = nil
        try? store.save(state, for: id)
        unlink(store.attachSocket(id))
        // --rm: removed as `rm` removes, unless a verb (`rm`, `stop`) holds the
        // container and will see to it. The verb lock is taken before the
        // container is let go, so no `start` can slip in between.
        if record.autoRemove, let lock = try? store.lockVerbs(id, wait: false) {
            if (try? store.markRemoving(id)) != nil { try? store.remove(id) }
            directory.release()
            closeQuietly(lock)
        } else {
            directory.release()
        }
        // Attached clients learn the exit code last, as docker's do: when
        // `urun run --rm` returns, the container is gone.
        sendExitCode(state.exitCode ?? 125, to: clients)
        return 0
    }

    /// A start that failed: reported to the urun that asked, nothing left behind.
    private func failed(_ error: UrunError, report: CInt, listener: CInt, directory: ContainerDirectory) -> Int32 {
        Channel.send(.failed(error), on: report)
        closeQuietly(listener)
        unlink(store.attachSocket(id))
        directory.release()
        return error.exitCode
    }

    private func sendExitCode(_ code: Int32, to clients: [CInt]) {
        for client in clients {
            _ = sendAll(client, AttachFrame.encode(AttachFrame.exitCode, AttachFrame.code(code)))
            closeQuietly(client)
        }
    }

    /// Waits before a restart; false when a signal (`urun stop` of a
    /// restarting container sends SIGTERM) or a verb says not to restart.
    private func backOff(milliseconds: Int) -> Bool {
        var blocked = blockSupervisedSignals()
        let signals = urun_signalfd(&blocked)
        defer { closeQuietly(signals) }
        let deadline = monotonicSeconds() + Double(milliseconds) / 1000
        while true {
            let left = Int((deadline - monotonicSeconds()) * 1000)
            if left <= 0 { return true }
            var ready = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
            if poll(&ready, 1, CInt(min(left, 250))) == 1 {
                var signo: CInt = 0, code: CInt = 0, sender: CInt = 0
                while urun_read_signal(signals, &signo, &code, &sender) == 1 {
                    if signo != SIGCHLD && signo != SIGHUP && signo != SIGWINCH { return false }
                }
            }
        }
    }

    /// Collects a finished check's result, or starts the next one when due
    /// (not while the container is paused: frozen, it could not answer).
    private func runHealthCheck(_ check: HealthCheck, probe: inout HealthProbe?, nextCheck: inout Double, startedAt: Timestamp) {
        if let running = probe {
            guard let result = running.result() else { return }
            store.recordHealth(id, result, check: check, containerStarted: startedAt)
            probe = nil
            nextCheck = monotonicSeconds() + Double(check.intervalMilliseconds) / 1000
        }
        guard monotonicSeconds() >= nextCheck else { return }
        nextCheck = monotonicSeconds() + Double(check.intervalMilliseconds) / 1000
        guard store.state(id).status == .running else { return }
        probe = HealthProbe.start(check, container: id, globalArguments: globalArguments)
    }

    /// The attach socket, listening (replacing one a killed monitor left).
    private func listen() throws(UrunError) -> CInt {
        try makeDirectories(store.runtime(id), mode: 0o700)
        unlink(store.attachSocket(id))
        let runtime = try sys(.superviseContainer, path: store.runtime(id)) {
            open(store.runtime(id), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        defer { closeQuietly(runtime) }
        return try sys(.superviseContainer, path: store.attachSocket(id)) { urun_unix_listen(runtime, "attach.sock") }
    }

    /// The starting client's first byte: with it, the descriptor it hands
    /// over as the container's stdin, or none.
    private func receiveStdin(from client: CInt) -> CInt? {
        guard client >= 0 else { return nil }
        var ready = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
        guard poll(&ready, 1, 5000) == 1 else { return nil }
        let fd = urun_recv_fd(client)
        return fd >= 0 ? fd : nil
    }

    /// One client, waited for up to `seconds`; -1 if none came.
    private func accept(_ listener: CInt, seconds: Int) -> CInt {
        var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&ready, 1, CInt(seconds * 1000)) == 1 else { return -1 }
        return urun_accept(listener)
    }

    /// The image of a kept container, from the cache (unpacked again from
    /// its archive if this id mapping lacks its layers).
    static func image(for record: ContainerRecord, cache: String) throws(UrunError) -> Image {
        if let directory = record.rootfsDirectory { return try ImageStore(directory: cache, mapping: nil).image(for: directory) }
        guard let id = record.imageID else { throw .invalid("container \(record.name) names no image") }
        return try ImageStore(directory: cache, mapping: try record.spec.subordinateMapping()).image(id: id)
    }

    /// Relays the container's output to the log and to attached clients, and
    /// their input to the container, until its PID 1 exits. Returns its exit
    /// status and the clients still attached, who are owed it.
    private func serve(
        _ started: StartedContainer, io: inout MonitorIO, log: ContainerLog?, listener: CInt, firstClient: CInt, health: HealthCheck?
    ) -> (ExitStatus, clients: [CInt]) {
        var probe: HealthProbe?
        var nextCheck = monotonicSeconds() + Double(health?.intervalMilliseconds ?? 0) / 1000
        defer { _ = probe?.result(force: true) }
        var blocked = started.blockedSignals
        let signals = urun_signalfd(&blocked)
        defer { closeQuietly(signals) }
        if let master = started.master {
            io.outputs = [(master, AttachFrame.stdout)]
            io.input = master
        }
        for (fd, _) in io.outputs { _ = urun_set_nonblock(fd, 1) }

        var clients: [(fd: CInt, buffer: [UInt8])] = firstClient >= 0 ? [(firstClient, [])] : []
        var status: ExitStatus?
        var buffer = [UInt8](repeating: 0, count: 65536)
        while status == nil || !io.outputs.isEmpty {
            var fds = [pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
            fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            for (fd, _) in io.outputs { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            // Indexes into fds, fixed now: outputs and clients change below.
            let polledOutputs = io.outputs
            let clientBase = fds.count
            let polledClients = clients.count
            for client in clients { fds.append(pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)) }
            // Once PID 1 is gone, drain what is left, but never wait forever.
            var timeout: CInt = status == nil ? -1 : 200
            if health != nil && status == nil {
                let untilCheck = probe?.remainingMilliseconds ?? max(0, Int((nextCheck - monotonicSeconds()) * 1000))
                timeout = CInt(min(untilCheck, HealthCheck.maximumMilliseconds))
            }
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 && errno == EINTR { continue }
            if let health, status == nil {
                runHealthCheck(health, probe: &probe, nextCheck: &nextCheck, startedAt: started.startedAt)
                if ready == 0 { continue }
            }
            if ready == 0 { break }

            if fds[0].revents != 0 {
                var signo: CInt = 0, code: CInt = 0, sender: CInt = 0
                while urun_read_signal(signals, &signo, &code, &sender) == 1 {
                    if signo == SIGCHLD {
                        var waitStatus: CInt = 0
                        if waitpid(started.pid, &waitStatus, WNOHANG) == started.pid {
                            status = ExitStatus(waitStatus: waitStatus)
                        }
                    } else if signo != SIGHUP && signo != SIGWINCH {
                        _ = urun_pidfd_send_signal(started.pidfd, signo)
                    }
                }
            }
            if fds[1].revents != 0 {
                let client = urun_accept(listener)
                if client >= 0 { clients.append((client, [])) }
            }
            var closedOutputs: [CInt] = []
            for (index, output) in polledOutputs.enumerated() where fds[2 + index].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(output.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    buffer.withUnsafeBytes { raw in
                        let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                        log?.append(chunk, stream: output.stream == AttachFrame.stderr ? "stderr" : "stdout")
                        let frame = AttachFrame.encode(output.stream, chunk)
                        clients.removeAll { client in
                            if sendAll(client.fd, frame) { return false }
                            closeQuietly(client.fd)
                            return true
                        }
                    }
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    closedOutputs.append(output.fd)  // EOF, or EIO once the pty's last holder is gone
                }
            }
            for fd in closedOutputs {
                io.outputs.removeAll { $0.fd == fd }
                if fd != started.master { closeQuietly(fd) }
            }
            var gone: [CInt] = []
            for (index, client) in clients.prefix(polledClients).enumerated() where fds[clientBase + index].revents != 0 {
                var incoming = [UInt8](repeating: 0, count: 16384)
                let n = incoming.withUnsafeMutableBytes { read(client.fd, $0.baseAddress, $0.count) }
                if n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)) {
                    gone.append(client.fd)
                    continue
                }
                guard n > 0 else { continue }
                clients[index].buffer += incoming[0..<n]
                for (kind, payload) in AttachFrame.decode(&clients[index].buffer) {
                    switch kind {
                    case AttachFrame.stdin:
                        if io.input >= 0 { sendAll(io.input, payload) }
                    case AttachFrame.endOfInput:
                        if io.input >= 0 && io.input != started.master {
                            closeQuietly(io.input)
                            io.input = -1
                        }
                    case AttachFrame.windowSize where payload.count == 4:
                        if let master = started.master {
                            WindowSize(rows: UInt16(payload[0]) << 8 | UInt16(payload[1]),
                                       columns: UInt16(payload[2]) << 8 | UInt16(payload[3])).apply(to: master)
                        }
                    default:
                        break
                    }
                }
            }
            for fd in gone {
                clients.removeAll { $0.fd == fd }
                closeQuietly(fd)
            }
        }
        if let master = started.master { closeQuietly(master) }
        return (status ?? ExitStatus(code: 137, signal: SIGKILL), clients.map(\.fd))
    }
}

/// The pipes between a monitor and its container (without -t; with -t, the pty).
struct MonitorIO {
    /// The monitor's ends: output descriptors with the frame kind they carry.
    var outputs: [(fd: CInt, stream: UInt8)] = []
    /// Where clients' input goes (-1: nowhere).
    var input: CInt = -1
    /// The container's ends, closed in the monitor once it has started.
    private var childEnds: [CInt] = []
    var childIO: ContainerIO = .inherit

    init() {}

    /// `stdin`: a descriptor the attached client handed over to be the
    /// container's own stdin (nothing is relayed then).
    init(spec: ContainerSpec, stdin handed: CInt? = nil) throws(UrunError) {
        guard !spec.tty else {  // the pty replaces stdio
            if let handed { closeQuietly(handed) }
            return
        }
        var stdoutPipe: [CInt] = [-1, -1]
        var stderrPipe: [CInt] = [-1, -1]
        try sys(.superviseContainer) { urun_pipe2(&stdoutPipe, O_CLOEXEC) }
        try sys(.superviseContainer) { urun_pipe2(&stderrPipe, O_CLOEXEC) }
        var stdin: CInt
        if let handed {
            stdin = handed
            childEnds.append(stdin)
        } else if spec.interactive {
            var stdinPipe: [CInt] = [-1, -1]
            try sys(.superviseContainer) { urun_pipe2(&stdinPipe, O_CLOEXEC) }
            stdin = stdinPipe[0]
            input = stdinPipe[1]
            childEnds.append(stdin)
        } else {
            stdin = try sys(.superviseContainer, path: "/dev/null") { open("/dev/null", O_RDONLY | O_CLOEXEC) }
            childEnds.append(stdin)
        }
        outputs = [(stdoutPipe[0], AttachFrame.stdout), (stderrPipe[0], AttachFrame.stderr)]
        childEnds += [stdoutPipe[1], stderrPipe[1]]
        childIO = .descriptors(stdin: stdin, stdout: stdoutPipe[1], stderr: stderrPipe[1])
    }

    mutating func closeChildEnds() {
        childEnds.forEach(closeQuietly)
        childEnds = []
    }
}
