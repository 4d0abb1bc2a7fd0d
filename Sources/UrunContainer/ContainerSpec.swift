import Glibc
import UrunCgroups
import UrunImage
import UrunKernel
import UrunNetwork
import UrunRootfs
import UrunSecurity
import UrunUserNS

/// How the container is connected to a network.
public enum NetworkMode: Sendable, Equatable, RawRepresentable {
    /// The default: `private` when a network helper can run here; otherwise
    /// `none`, with a one-line notice that names the cause.
    case auto
    /// Its own network namespace connected by a user-mode helper (pasta,
    /// else slirp4netns): an interface, outbound traffic, DNS, published ports.
    case `private`
    /// `private` through this helper only.
    case pasta, slirp4netns
    /// Its own network namespace with only loopback, up.
    case none
    /// The host's network namespace.
    case host
    /// The network namespace of another running container (and so its user
    /// namespace, which owns it).
    case container(String)

    /// The words --network takes, for help and completion.
    public static let names = ["private", "none", "host", "pasta", "slirp4netns", "container:NAME"]

    public init?(rawValue: String) {
        switch rawValue {
        case "auto": self = .auto
        case "private": self = .private
        case "pasta": self = .pasta
        case "slirp4netns": self = .slirp4netns
        case "none": self = .none
        case "host": self = .host
        default:
            guard rawValue.hasPrefix("container:"), rawValue.count > "container:".count else { return nil }
            self = .container(String(rawValue.dropFirst("container:".count)))
        }
    }

    public var rawValue: String {
        switch self {
        case .auto: return "auto"
        case .private: return "private"
        case .pasta: return "pasta"
        case .slirp4netns: return "slirp4netns"
        case .none: return "none"
        case .host: return "host"
        case .container(let name): return "container:" + name
        }
    }

    /// Whether the container's network namespace is not the host's (a
    /// joined container's is owned by the user namespace it joins too).
    public var ownNamespace: Bool { self != .host }

    /// Whether the container makes a network namespace of its own.
    public var createsNamespace: Bool {
        switch self {
        case .host, .container: return false
        default: return true
        }
    }

    /// The container whose network is joined, with container:NAME.
    public var joinedContainer: String? {
        if case .container(let name) = self { return name }
        return nil
    }
}

/// Everything urun needs to know to start one container, from the command
/// line; passed by value from the CLI to the launcher.
public struct ContainerSpec: Sendable {
    public var image: String
    /// The command and its arguments; empty means the image's (or a shell).
    public var command: [String] = []
    /// --entrypoint: replaces the image's entrypoint ([] clears it).
    public var entrypoint: [String]?
    /// --platform: which image of a multi-platform archive or registry index.
    public var platform: String?
    /// --label KEY=VALUE: the container's own labels (shown by inspect, below the image's).
    public var labels: [String: String] = [:]
    /// --ulimit: resource limits of the process (setrlimit), by RLIMIT_ number.
    public var ulimits: [(resource: CInt, soft: UInt64, hard: UInt64)] = []
    /// --sysctl: namespaced kernel settings written in the container.
    public var sysctls: [(name: String, value: String)] = []
    /// --shm-size: /dev/shm's size in bytes (nil: 64 MiB, docker's default).
    public var shmSize: UInt64?
    /// --pull, --tls-verify, --cert-dir, --authfile: when and how an image comes from a registry.
    public var registry = RegistryOptions()
    /// The image's own environment (its config's Env), below -e.
    public var imageEnvironment: [String] = []
    /// KEY=VALUE pairs from -e and --env-file, in order.
    public var environment: [String] = []
    public var workingDirectory: String?
    /// `uid[:gid]` or `name[:group]`, resolved in the image.
    public var user: String?
    public var hostname: String?
    public var name: String?
    public var volumes: [Volume] = []
    public var tmpfs: [TmpfsMount] = []
    public var readOnly = false
    public var network: NetworkMode = .auto
    /// -p/--publish: host ports forwarded into the container (needs pasta).
    public var ports: [PortMapping] = []
    /// -P: publish every port the image exposes, each on a free host port.
    public var publishAll = false
    /// --mtu: the container interface's MTU (pasta's default: 65520).
    public var mtu: Int?
    /// --dns, --dns-search, --dns-option: /etc/resolv.conf's lines, replacing the defaults.
    public var dns: [String] = []
    public var dnsSearch: [String] = []
    public var dnsOptions: [String] = []
    /// --add-host NAME:IP, in /etc/hosts.
    public var extraHosts: [String] = []
    /// Allocate a pty in the container (-t).
    public var tty = false
    /// Keep stdin connected (-i). A foreground run always passes stdin through.
    public var interactive = false
    /// Put urun in front of the command as a reaping PID 1 (--init).
    public var useInit = false
    /// --memory, --cpus, --pids-limit, ...: enforced, or the container does not start.
    public var limits = ResourceLimits()
    /// The signal `urun stop` sends first (default SIGTERM).
    public var stopSignal: String?
    /// Seconds `urun stop` waits before SIGKILL (default 10).
    public var stopTimeout: Int?
    /// --restart: what the monitor does when the command exits.
    public var restart: RestartPolicy = .no
    /// --health-cmd and its settings; else the image's HEALTHCHECK, unless --no-healthcheck.
    public var healthCheck: HealthCheck?
    public var healthCheckDisabled = false
    /// --health-interval and the rest, applied to the image's check when no --health-cmd replaces it.
    public var healthSettings = HealthSettings()
    /// --annotation KEY=VALUE: shown by inspect, handed to nothing else (OCI annotations).
    public var annotations: [String: String] = [:]
    /// --device HOST[:CONTAINER[:PERMISSIONS]]: device nodes bound into /dev.
    public var devices: [DeviceMapping] = []
    /// --domainname: the NIS domain name of the container's UTS namespace.
    public var domainname: String?
    /// --oom-score-adj: the command's /proc/self/oom_score_adj (raising it needs no privilege).
    public var oomScoreAdj: Int?
    /// --cgroupns host: the container sees the host's cgroup tree (no cgroup namespace).
    public var hostCgroupNamespace = false
    /// --expose: ports exposed besides the image's (what -P publishes).
    public var exposedPorts: [String] = []
    /// -q: no pull progress.
    public var quietPull = false
    /// --group-add: more supplementary groups (gids or the image's group names), or keep-groups.
    public var groupAdd: [String] = []
    /// --pid, --ipc, --uts host: the host's namespace of that kind instead of a new one.
    public var hostNamespaces: Set<SharedNamespace> = []
    /// How ids are mapped: subordinate ranges when the user has some (auto).
    public var userNamespace: UserNamespaceMode = .auto
    /// --userns keep-id[:uid=N,gid=N]: the ids kept inside (nil: the caller's own).
    public var keepID: (uid: UInt32, gid: UInt32)?
    /// Capabilities, no_new_privs, seccomp and masked paths: docker's defaults.
    public var security = SecurityPolicy()

    public init(image: String) {
        self.image = image
    }

    /// The image the spec names: from the cache, unpacked from its archive,
    /// or pulled from a registry as --pull says.
    func resolveImage(cache: String, showProgress: Bool) throws(UrunError) -> Image {
        let showProgress = showProgress && !quietPull
        let store = ImageStore(directory: cache, mapping: try subordinateMapping())
        return try RegistryTransfer(store: store, options: registry).image(for: image, platform: platform, showProgress: showProgress)
    }

    /// The command to run once `resolved(with:)` has merged the image's:
    /// a plain rootfs tarball has none, so a shell, as `docker run -it alpine` gives one.
    public var effectiveCommand: [String] { command.isEmpty ? ["/bin/sh"] : command }

    /// The map of the container's user namespace: subordinate ids, or nil
    /// for the single mapping of the caller's own ids.
    public func subordinateMapping() throws(UrunError) -> IDMap? {
        try IDMap.subordinateForCaller(userNamespace, keepID: keepID)
    }

    /// The spec with the image's configuration filled in where the command
    /// line said nothing, as docker does: Entrypoint + Cmd (`--entrypoint`
    /// drops the image's Cmd, a command replaces it), Env below -e,
    /// WorkingDir, User and StopSignal; with -P, the exposed ports.
    public func resolved(with config: ImageConfig?) -> ContainerSpec {
        var spec = self
        let entry = entrypoint ?? config?.entrypoint ?? []
        let arguments = !command.isEmpty ? command : (entrypoint != nil ? [] : config?.cmd ?? [])
        spec.command = entry + arguments
        spec.entrypoint = nil
        guard let config else { return spec }
        spec.imageEnvironment = config.env
        spec.workingDirectory = workingDirectory ?? config.workingDir
        spec.user = user ?? config.user
        spec.stopSignal = stopSignal ?? config.stopSignal
        if healthCheck == nil && !healthCheckDisabled, var check = HealthCheck(image: config.healthcheck) {
            healthSettings.apply(to: &check)
            spec.healthCheck = check
        }
        if publishAll {
            // -P: each exposed port on a free host port, unless -p already publishes it.
            for exposed in config.exposedPorts + exposedPorts {
                guard let mapping = try? PortMapping.parse(exposed),
                    !ports.contains(where: { $0.proto == mapping.proto && ($0.containerPort..<$0.containerPort + $0.count).contains(mapping.containerPort) })
                else { continue }
                spec.ports.append(mapping)
            }
            spec.publishAll = false
        }
        return spec
    }
}

/// The namespaces `--pid host`, `--ipc host` and `--uts host` share with the host.
public enum SharedNamespace: String, Sendable, CaseIterable {
    case pid, ipc, uts
}

/// `--device HOST[:CONTAINER[:PERMISSIONS]]`: a host device node the user
/// may open, bound into the container. Rootless there is no device cgroup to
/// enforce PERMISSIONS (r, w, m): access is what the host node's mode allows.
public struct DeviceMapping: Equatable, Sendable {
    public let source: String
    public let target: String
    public let permissions: String

    public init(source: String, target: String, permissions: String = "rwm") {
        self.source = source
        self.target = target
        self.permissions = permissions
    }

    public static func parse(_ text: String) throws(UrunError) -> DeviceMapping {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let permissions = parts.count > 1 && parts.last!.allSatisfy({ "rwm".contains($0) }) && !parts.last!.isEmpty ? parts.last! : nil
        let paths = permissions == nil ? parts : Array(parts.dropLast())
        guard (1...2).contains(paths.count), paths.allSatisfy({ $0.hasPrefix("/") && !$0.contains("\0") }) else {
            throw .usage("--device \(printable(text)): expected HOST[:CONTAINER[:PERMISSIONS]], absolute paths, PERMISSIONS of r, w and m")
        }
        return DeviceMapping(source: paths[0], target: paths.count == 2 ? paths[1] : paths[0], permissions: permissions ?? "rwm")
    }

    /// The host node, checked now: a character or block device the caller may open.
    public func validated() throws(UrunError) {
        guard let st = fileStatus(source, followLinks: true) else {
            throw .invalid("--device \(printable(source)): no such device on the host")
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFCHR || type == S_IFBLK else { throw .invalid("--device \(printable(source)): not a device node") }
        let wanted = (permissions.contains("r") ? R_OK : 0) | (permissions.contains("w") ? W_OK : 0)
        guard access(source, wanted) == 0 else {
            throw .invalid("--device \(printable(source)): you may not open it (\(Errno.current.message)); rootless, a container gets only the devices its user may use")
        }
    }

    var flag: String { "\(source):\(target):\(permissions)" }
}
