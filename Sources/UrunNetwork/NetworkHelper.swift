import CUrunSyscalls
import Glibc
import UrunKernel

/// The user-mode network of a container: a helper joined to the container's
/// user and network namespaces that gives it an interface, outbound TCP, UDP
/// and ICMP through the host's own sockets, DNS through a forwarding address,
/// and the published ports: pasta (Debian's `passt`), where the container
/// sees the host's addresses and routes, or slirp4netns, on its own
/// 10.0.2.0/24 network, as podman has them (`Kind.preferred` says which).
///
/// The helper runs as the user, as a child of urun (or of the container's
/// monitor) that dies with it (PR_SET_PDEATHSIG): it is stopped and reaped
/// when the container ends, and cannot outlive a SIGKILLed urun. It tells us
/// it is ready on fd 3, a pipe here (pasta writes its pid there, slirp4netns
/// a "1"); if it fails instead, the pipe reaches EOF and its stderr, kept in
/// a memfd so that a chatty helper never blocks on a full pipe, says why.
public final class NetworkHelper: @unchecked Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case pasta, slirp4netns

        /// The Debian and Ubuntu package that has it.
        public var package: String { self == .pasta ? "passt" : "slirp4netns" }

        /// Where the container sends DNS queries; the helper hands them to the host's resolver.
        public var dnsAddress: String { self == .pasta ? "169.254.1.1" : "10.0.2.3" }

        /// The order `private` tries them in. The container waits for its
        /// helper before its command runs, so without published ports the one
        /// that starts fastest comes first (slirp4netns is ready in about 3 ms,
        /// pasta's own set-up takes over 20: Docs/performance.md); with ports,
        /// pasta, which forwards them at nearly the host's loopback rate.
        public static func preferred(publishing: Bool) -> [Kind] {
            publishing ? [.pasta, .slirp4netns] : [.slirp4netns, .pasta]
        }

        /// The executable, from PATH as podman finds it, or nil.
        public var executable: String? { try? lookupCommand(rawValue, path: environment("PATH") ?? defaultPath) }
    }

    /// The interface the helper makes in the container.
    public static let interfaceName = "eth0"
    /// slirp4netns' address for the host's loopback (10.0.2.2).
    public static let slirpHostAddress = "10.0.2.2"

    public let kind: Kind
    public let pid: pid_t
    public let ports: [PortMapping]
    private var stopped = false

    private init(kind: Kind, pid: pid_t, ports: [PortMapping]) {
        self.kind = kind
        self.pid = pid
        self.ports = ports
    }

    /// The first of `kinds` that can run here, or why none can.
    public static func choose(from kinds: [Kind]) -> Result<Kind, UrunError> {
        guard let kind = kinds.first(where: { $0.executable != nil }) else {
            let packages = kinds.map(\.package).joined(separator: " or ")
            return .failure(.invalid("\(kinds.map(\.rawValue).joined(separator: " and ")) \(kinds.count > 1 ? "are" : "is") not installed (Debian and Ubuntu: apt-get install \(packages))"))
        }
        let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let why = Errno.current
            return .failure(.invalid("/dev/net/tun: \(why.message) (\(kind.rawValue) needs it; stock Debian and Ubuntu make it mode 0666: as root, chmod 0666 /dev/net/tun)"))
        }
        closeQuietly(fd)
        return .success(kind)
    }

    /// Starts the helper against the namespaces of `pid` (a child that waits
    /// for us) and returns once the container's interface is configured.
    public static func start(_ kind: Kind, for pid: pid_t, ports: [PortMapping], mtu: Int?) throws(UrunError) -> NetworkHelper {
        guard let executable = kind.executable else { throw .invalid("no network helper: \(kind.rawValue) is not installed (Debian and Ubuntu: apt-get install \(kind.package))") }
        let start = PortMapping.unprivilegedPortStart()
        if getuid() != 0, let low = ports.first(where: { $0.hostPort < start }) {
            throw .invalid(
                "-p \(low.description): host port \(low.hostPort) is below \(start), the first port an unprivileged user may bind (net.ipv4.ip_unprivileged_port_start); publish on a higher port (-p 8080:\(low.containerPort)), or as root: sysctl net.ipv4.ip_unprivileged_port_start=\(low.hostPort)")
        }
        if kind == .slirp4netns, let v6 = ports.first(where: { $0.hostIP?.contains(":") == true }) {
            throw .invalid("-p \(v6.description): slirp4netns publishes on IPv4 addresses only (pasta, from the passt package, does IPv6)")
        }
        // slirp4netns takes ports through its API socket, needed only until they are added.
        let api = kind == .slirp4netns && !ports.isEmpty ? try SlirpAPI.makeSocketDirectory() : nil
        defer { api?.remove() }
        let arguments = kind == .pasta ? pastaArguments(executable, pid: pid, ports: ports, mtu: mtu)
            : slirpArguments(executable, pid: pid, mtu: mtu, apiSocket: api?.socket)
        Explain.step(.startNetworkHelper, ([kind.rawValue] + arguments.dropFirst()).joined(separator: " "))

        var ready: [CInt] = [-1, -1]
        try sys(.startNetworkHelper) { urun_pipe2(&ready, O_CLOEXEC) }
        defer { closeQuietly(ready[0]) }
        let errors = urun_memfd("urun-network-helper-stderr")
        defer { closeQuietly(errors) }
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let child = withCStrings(arguments) { argv in
            withCStrings(["PATH=/usr/bin:/bin"]) { envp in
                [devnull, devnull, errors >= 0 ? errors : devnull, ready[1]].withUnsafeBufferPointer {
                    urun_spawn_tied(executable, argv, envp, $0.baseAddress, 4)
                }
            }
        }
        let spawnError = Errno.current
        closeQuietly(devnull)
        closeQuietly(ready[1])
        guard child > 0 else { throw .kernel(.startNetworkHelper, path: executable, spawnError) }
        let helper = NetworkHelper(kind: kind, pid: child, ports: ports)

        // Bytes on the ready pipe: configured. EOF: it gave up (its stderr says why).
        var buffer = [UInt8](repeating: 0, count: 32)
        var n: Int
        repeat { n = read(ready[0], &buffer, buffer.count) } while n < 0 && errno == EINTR
        if n <= 0 {
            var output = ""
            if errors >= 0 && lseek(errors, 0, SEEK_SET) == 0 {
                output = String(decoding: (try? readAll(errors)) ?? [], as: UTF8.self)
            }
            helper.stop()
            throw .invalid("the network helper \(kind.rawValue) failed: " + explain(output, ports: ports))
        }
        if let api {
            do throws(UrunError) {
                try api.publish(ports)
            } catch {
                helper.stop()
                throw error
            }
        }
        return helper
    }

    private static func pastaArguments(_ pasta: String, pid: pid_t, ports: [PortMapping], mtu: Int?) -> [String] {
        var arguments = [pasta, "--foreground", "--quiet", "--stderr", "--config-net", "--ns-ifname", interfaceName,
                         "--dns-forward", Kind.pasta.dnsAddress, "--pid", "/proc/self/fd/3"]
        // As root pasta would drop to nobody, who may not open the container's namespaces.
        if getuid() == 0 { arguments += ["--runas", "0:0"] }
        if let mtu { arguments += ["--mtu", String(mtu)] }
        for port in ports { arguments += [port.proto == .tcp ? "--tcp-ports" : "--udp-ports", port.pastaSpec] }
        // Nothing forwarded in the other direction unless asked.
        if !ports.contains(where: { $0.proto == .tcp }) { arguments += ["--tcp-ports", "none"] }
        if !ports.contains(where: { $0.proto == .udp }) { arguments += ["--udp-ports", "none"] }
        return arguments + ["--tcp-ns", "none", "--udp-ns", "none", "--userns", "/proc/\(pid)/ns/user", "--netns", "/proc/\(pid)/ns/net"]
    }

    /// slirp4netns with pasta's MTU; ports are added through its API socket once it is up.
    private static func slirpArguments(_ slirp: String, pid: pid_t, mtu: Int?, apiSocket: String?) -> [String] {
        var arguments = [slirp, "--configure", "--mtu=\(mtu ?? 65520)", "--ready-fd=3", "--enable-seccomp"]
        if let apiSocket { arguments.append("--api-socket=" + apiSocket) }
        return arguments + ["--userns-path=/proc/\(pid)/ns/user", "--netns-type=path", "/proc/\(pid)/ns/net", interfaceName]
    }

    /// The helper's last words, with what they mean for a urun user.
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

    /// Stops the helper and reaps it. Idempotent. `reap: false` only signals
    /// it, for a urun about to exit: pasta's exit (its tap device going away)
    /// takes some 25 ms that a foreground run need not wait for.
    public func stop(reap: Bool = true) {
        guard !stopped else { return }
        stopped = true
        kill(pid, SIGTERM)
        guard reap else { return }
        // The helpers end at once on SIGTERM; SIGKILL if it has not within a second.
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
