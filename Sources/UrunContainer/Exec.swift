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
    /// its exit status (see JoinedProcess).
    public func exec(_ record: ContainerRecord, _ options: ExecOptions) throws(UrunError) -> ExitStatus {
        let container = try RunningContainer.open(record, store: store)
        defer { container.close() }
        let cgroupFD: CInt = container.state.cgroup.map { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } ?? -1
        defer { closeQuietly(cgroupFD) }
        let mappedUID = container.mappedUID
        // From the host's cache, before the mount namespace changes.
        let security = record.spec.security
        let seccomp = try security.seccompProgram(cache: store.paths.cache, singleMapping: mappedUID != nil)
        // The user is resolved in the container's own /etc/passwd, read through its root.
        let user = try ContainerUser.resolve(options.user ?? record.spec.user, rootfs: "/proc/\(container.pid)/root")
            .adding(groups: record.spec.groupAdd) { ContainerUser.readInImage("/proc/\(container.pid)/root", $0) }
        if let mapped = mappedUID, user.uid != mapped {
            throw .invalid("urun exec -u: only uid \(mapped) is mapped in this container (it has no subordinate ids)")
        }
        let hostname = container.readFile("/etc/hostname")?.split(separator: "\n").first.map(String.init) ?? ""
        var process = JoinedProcess(
            command: options.command,
            environment: ContainerEnvironment.build(
                hostname: hostname, home: user.home, image: record.spec.imageEnvironment,
                user: record.spec.environment + options.environment),
            workingDirectory: options.workingDirectory ?? record.spec.workingDirectory ?? "/", security: security,
            seccomp: seccomp)
        // With subordinate ids, setns(2) makes urun root inside: the child switches.
        process.switchTo = mappedUID == nil ? user : nil
        process.tty = options.tty
        process.windowSize = options.tty ? (WindowSize.of(0) ?? WindowSize.of(1)) : nil
        let blocked = blockSupervisedSignals()
        let started = try process.start(joining: container.pidfd, pid: container.pid, name: record.name, cgroupFD: cgroupFD)
        let supervisor = try Supervisor(pid: started.pid, pidfd: started.pidfd, blockedSignals: blocked, master: started.master)
        return supervisor.run()
    }
}
