import CUrunSyscalls
import Glibc
import UrunCgroups
import UrunKernel
import UrunOCI
import UrunProcess
import UrunUserNS

extension Launcher {
    /// An OCI bundle's container, up to the exec of its command: `launch`,
    /// as for `urun run`, with the bundle's plan. The init reports ready once
    /// its command is found, then waits on `fifo` until `start`.
    /// `state(pid, status)` is what the hooks get on their stdin.
    func createBundle(
        _ plan: ContainerPlan, id: String, fifo: String, options: OCIRuntime.CreateOptions, foreground: Bool,
        hooks: OCIConfig.Hooks, state: @escaping (Int32, String) -> JSON
    ) throws(UrunError) -> CreatedBundle {
        try sys(.waitForStart, explain: "mkfifo(\"\(fifo)\")", path: fifo) { mkfifo(fifo, 0o600) }
        let fifoFD = try sys(.waitForStart, path: fifo) { open(fifo, CInt(URUN_O_PATH) | O_CLOEXEC) }
        defer { closeQuietly(fifoFD) }
        var plan = plan
        // `run` in the foreground gives the container urun's own terminal size.
        if plan.windowSize == nil && foreground && plan.process.terminal { plan.windowSize = WindowSize.of(0) ?? WindowSize.of(1) }

        var cgroup: Cgroup?
        var started = false
        defer { if !started, let cgroup { try? cgroup.remove() } }
        let launched = try launch(
            plan, io: .inherit, diesWithParent: foreground, startFIFO: fifoFD, keepDescriptors: 2 + options.preserveFDs,
            hookState: state,
            prepare: { (pid) throws(UrunError) in
                cgroup = try BundleCgroup.make(id: id, path: plan.cgroupsPath, settings: plan.resources)
                if let made = cgroup {
                    do throws(UrunError) {
                        try made.add(pid: pid)
                    } catch {
                        // Without limits, a cgroup urun may not enter is no reason to fail (runc's rootless rule).
                        guard plan.resources.isEmpty else { throw error }
                        try? made.remove()
                        cgroup = nil
                    }
                }
            },
            connect: { (pid) throws(UrunError) in
                for hook in hooks.prestart + hooks.createRuntime {
                    try Hooks.run(hook, state: state(pid, "creating"), stage: "createRuntime")
                }
            })
        var master = launched.master
        do throws(UrunError) {
            if let fd = master, let socket = options.consoleSocket {
                try HostPath(socket).sendConsole(fd)
                closeQuietly(fd)
                master = nil
            }
        } catch {
            if let master { closeQuietly(master) }
            launched.child.reap()
            throw error
        }
        started = true
        return CreatedBundle(
            pid: launched.child.pid, pidfd: launched.child.pidfd, startTime: ProcessIdentity.of(launched.child.pid)?.startTime ?? 0,
            cgroup: cgroup?.path, master: master)
    }
}

/// The cgroup of a bundle's container: linux.cgroupsPath (absolute: from the
/// hierarchy's root; relative: below urun's own cgroup), or with limits and
/// no path, `urun-<id>` below the delegated subtree. Limits that cannot be
/// enforced fail the create naming the fix; without limits a cgroup urun may
/// not make is no error, and the container runs where urun is (runc's
/// rootless rule).
enum BundleCgroup {
    static func make(id: String, path: String?, settings: [ResourceLimits.Setting]) throws(UrunError) -> Cgroup? {
        guard let hierarchy = CgroupHierarchy.discover() else {
            guard let first = settings.first else { return nil }
            throw ContainerCgroup.notDelegated(first, because: .invalid("this host has no cgroup v2 hierarchy mounted"))
        }
        var target: Cgroup?
        if let path, !path.isEmpty, !path.contains(":") {
            guard !path.split(separator: "/").contains("..") else { throw .invalid("config.json: linux.cgroupsPath: \(printable(path)) leaves the hierarchy") }
            target = Cgroup(path: path.hasPrefix("/") ? hierarchy.mountPoint + path : hierarchy.own.path + "/" + path)
        } else if !settings.isEmpty || path != nil {
            // No path, or systemd's slice:prefix:name, which urun (no systemd) places itself.
            if case .success(let delegated) = ContainerCgroup.delegated() { target = delegated.child(ContainerCgroup.prefix + id) }
        }
        guard let cgroup = target else {
            guard let first = settings.first else { return nil }
            throw ContainerCgroup.notDelegated(first, because: .invalid("no cgroup is delegated to you here"))
        }
        do throws(UrunError) {
            try makeDirectories(cgroup.path, mode: 0o755, step: .createCgroup)
            // cgroup.* files (linux.resources.unified) are the core's: no controller to enable.
            let needed = Set(settings.map(\.controller)).subtracting(["cgroup"])
            if !needed.isEmpty {
                let enabled = try cgroup.parent.subtreeControl()
                for controller in needed.sorted() where !enabled.contains(controller) {
                    try cgroup.parent.write("cgroup.subtree_control", "+" + controller, step: .enableControllers)
                }
            }
            for setting in settings { try cgroup.write(setting.file, setting.value, step: .writeLimit) }
            return cgroup
        } catch {
            try? cgroup.remove()
            guard let first = settings.first else { return nil }
            throw ContainerCgroup.notDelegated(first, because: error)
        }
    }
}

/// Running a config's hooks: the program with its args and env, the
/// container's state on its stdin, within its timeout.
enum Hooks {
    static func run(_ hook: OCIConfig.Hook, state: JSON, stage: String) throws(UrunError) {
        Explain.step(.runHook, "\(stage) hook \(hook.path)")
        var input: [CInt] = [-1, -1]
        try sys(.runHook, path: hook.path) { urun_pipe2(&input, O_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        var pid: pid_t = 0
        let arguments = hook.args.isEmpty ? [hook.path] : hook.args
        let rc = withCStrings(arguments) { argv in
            withCStrings(hook.env) { envp in posix_spawn(&pid, hook.path, &actions, nil, argv, envp) }
        }
        closeQuietly(input[0])
        guard rc == 0 else {
            closeQuietly(input[1])
            throw .kernel(.runHook, path: hook.path, Errno(rawValue: rc))
        }
        _ = try? writeAll(input[1], state.serialized(), step: .runHook, path: hook.path)
        closeQuietly(input[1])
        let deadline = hook.timeout.map { monotonicSeconds() + Double($0) }
        var status: CInt = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped < 0 && errno != EINTR { throw .kernel(.runHook, path: hook.path, .current) }
            if let deadline, monotonicSeconds() > deadline {
                Glibc.kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                throw .invalid("\(stage) hook \(hook.path) did not finish within \(hook.timeout!) seconds")
            }
            usleep(2000)
        }
        let code = ExitStatus(waitStatus: status).code
        guard code == 0 else { throw .invalid("\(stage) hook \(hook.path) failed with exit status \(code)") }
    }
}
