import CUrunSyscalls
import Glibc
import UrunKernel

/// The user-mode network of a container: pasta (Debian's `passt` package)
/// joined to the container's user and network namespaces, giving it an
/// interface with the host's addresses and routes, outbound TCP, UDP and
/// ICMP through the host's own sockets, DNS through a forwarding address,
/// and the published ports.
///
/// pasta runs as the user, in the foreground, as a child of urun (or of the
/// container's monitor) that dies with it (PR_SET_PDEATHSIG): it is stopped
/// and reaped when the container ends, and cannot outlive a SIGKILLed urun.
/// It tells us it is ready by writing its pid to `-P`, a pipe here; if it
/// fails instead, the pipe reaches EOF and its stderr says why.
public final class NetworkHelper: @unchecked Sendable {
    /// Where the container sends DNS queries; pasta hands them to the host's resolver.
    public static let dnsAddress = "169.254.1.1"
    /// The interface pasta makes in the container.
    public static let interfaceName = "eth0"

    public let pid: pid_t
    public let ports: [PortMapping]
    private var stopped = false

    private init(pid: pid_t, ports: [PortMapping]) {
        self.pid = pid
        self.ports = ports
    }

    /// The pasta executable, or nil when the passt package is missing.
    public static func pasta() -> String? {
        for directory in ["/usr/bin", "/usr/local/bin", "/bin"] where access(directory + "/pasta", X_OK) == 0 {
            return directory + "/pasta"
        }
        return nil
    }

    /// Why a container could not have its own network, or nil when it can:
    /// pasta is installed and /dev/net/tun opens for this user.
    public static func unavailableReason() -> String? {
        guard pasta() != nil else { return "pasta is not installed (Debian and Ubuntu: apt-get install passt)" }
        let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let why = Errno.current
            return "/dev/net/tun: \(why.message) (pasta needs it; stock Debian and Ubuntu make it mode 0666: as root, chmod 0666 /dev/net/tun)"
        }
        closeQuietly(fd)
        return nil
    }

    /// Starts pasta against the namespaces of `pid` (a child that waits
    /// for us) and returns once the container's interface is configured.
    public static func start(for pid: pid_t, ports: [PortMapping], mtu: Int?) throws(UrunError) -> NetworkHelper {
        guard let pasta = pasta() else { throw .invalid("no network helper: pasta is not installed (Debian and Ubuntu: apt-get install passt)") }
        let start = PortMapping.unprivilegedPortStart()
        if getuid() != 0, let low = ports.first(where: { $0.hostPort < start }) {
            throw .invalid(
                "-p \(low.description): host port \(low.hostPort) is below \(start), the first port an unprivileged user may bind (net.ipv4.ip_unprivileged_port_start); publish on a higher port (-p 8080:\(low.containerPort)), or as root: sysctl net.ipv4.ip_unprivileged_port_start=\(low.hostPort)")
        }
        var arguments = [pasta, "--foreground", "--quiet", "--stderr", "--config-net", "--ns-ifname", interfaceName,
                         "--dns-forward", dnsAddress, "--pid", "/proc/self/fd/3"]
        // As root pasta would drop to nobody, who may not open the container's namespaces.
        if getuid() == 0 { arguments += ["--runas", "0:0"] }
        if let mtu { arguments += ["--mtu", String(mtu)] }
        for port in ports { arguments += [port.proto == .tcp ? "--tcp-ports" : "--udp-ports", port.pastaSpec] }
        // Nothing forwarded in the other direction unless asked.
        if !ports.contains(where: { $0.proto == .tcp }) { arguments += ["--tcp-ports", "none"] }
        if !ports.contains(where: { $0.proto == .udp }) { arguments += ["--udp-ports", "none"] }
        arguments += ["--tcp-ns", "none", "--udp-ns", "none", "--userns", "/proc/\(pid)/ns/user", "--netns", "/proc/\(pid)/ns/net"]
        Explain.step(.startNetworkHelper, arguments.map { baseName(of: $0) == "pasta" ? "pasta" : $0 }.joined(separator: " "))

        var ready: [CInt] = [-1, -1]
        var errors: [CInt] = [-1, -1]
        try sys(.startNetworkHelper) { urun_pipe2(&ready, O_CLOEXEC) }
        defer { closeQuietly(ready[0]) }
        do throws(UrunError) {
            try sys(.startNetworkHelper) { urun_pipe2(&errors, O_CLOEXEC) }
        } catch {
            closeQuietly(ready[1])
            throw error
        }
        defer { closeQuietly(errors[0]) }
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let child = withCStrings(arguments) { argv in
            withCStrings(["PATH=/usr/bin:/bin"]) { envp in
                [devnull, devnull, errors[1], ready[1]].withUnsafeBufferPointer { urun_spawn_tied(pasta, argv, envp, $0.baseAddress, 4) }
            }
        }
        let spawnError = Errno.current
        closeQuietly(devnull)
        closeQuietly(ready[1])
        closeQuietly(errors[1])
        guard child > 0 else { throw .kernel(.startNetworkHelper, path: pasta, spawnError) }
        let helper = NetworkHelper(pid: child, ports: ports)

        // Its pid on the ready pipe: configured. EOF: it gave up (its stderr says why).
        var buffer = [UInt8](repeating: 0, count: 32)
        var n: Int
        repeat { n = read(ready[0], &buffer, buffer.count) } while n < 0 && errno == EINTR
        if n <= 0 {
            let output = String(decoding: (try? readAll(errors[0])) ?? [], as: UTF8.self)
            helper.stop()
            throw .invalid("the network helper pasta failed: " + explain(output, ports: ports))
        }
        return helper
    }

    /// pasta's last words, with what they mean for a urun user.
    static func explain(_ output: String, ports: [PortMapping]) -> String {
        let lines = output.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        let message = lines.last ?? "it exited without a message"
        if message.contains("in use") || message.contains("Failed to bind") {
            return "\(message): a published host port (\(ports.map(\.description).joined(separator: ", "))) is already in use"
        }
        if message.contains("/dev/net/tun") {
            return "\(message) (stock Debian and Ubuntu make /dev/net/tun mode 0666: as root, chmod 0666 /dev/net/tun)"
        }
        return message
    }

    /// Stops pasta and reaps it. Idempotent. `reap: false` only signals it,
    /// for a urun about to exit: pasta's exit (its tap device going away)
    /// takes some 25 ms that a foreground run need not wait for.
    public func stop(reap: Bool = true) {
        guard !stopped else { return }
        stopped = true
        kill(pid, SIGTERM)
        guard reap else { return }
        // pasta ends at once on SIGTERM; SIGKILL if it has not within a second.
        let pidfd = urun_pidfd_open(pid)
        if pidfd >= 0 {
            var exited = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            if poll(&exited, 1, 1000) == 0 { kill(pid, SIGKILL) }
            closeQuietly(pidfd)
        }
        var status: CInt = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    deinit { stop() }
}
