import Glibc
import UrunCLI
import UrunCgroups
import UrunContainer
import UrunKernel
import UrunNetwork
import UrunProcess
import UrunRootfs
import UrunSecurity
import UrunUserNS

/// The options that describe a container, shared by `run` and `create`.
enum ContainerOptions {
    static let options: [OptionSpec] = [
        OptionSpec("name", value: "NAME", help: "Name the container (a kept container: see --rm)"),
        OptionSpec("entrypoint", value: "COMMAND", help: "Replace the image's entrypoint (\"\" clears it; the image's Cmd goes too)"),
        OptionSpec("platform", value: "OS/ARCH", help: "Which image of a multi-platform archive or registry index (default: this machine's)"),
        OptionSpec("pull", value: "POLICY", help: "When to pull IMAGE from a registry: missing (default: when not in the cache), always, newer (when the registry is reachable), never", choices: PullPolicy.allCases.map(\.rawValue)),
        OptionSpec("env", short: "e", value: "KEY=VALUE", help: "Set an environment variable (KEY alone: take it from urun's environment)", repeatable: true),
        OptionSpec("env-file", value: "FILE", help: "Read environment variables from FILE", repeatable: true, files: true),
        OptionSpec("workdir", short: "w", value: "DIR", help: "Working directory inside the container (created if missing)"),
        OptionSpec("user", short: "u", value: "USER[:GROUP]", help: "Run as this user: a name or uid from the image's /etc/passwd"),
        OptionSpec("hostname", short: "h", value: "NAME", help: "Container hostname (default: the first 12 digits of its id)"),
        OptionSpec("volume", short: "v", value: "SRC:DST[:ro]", help: "Bind a host path into the container", repeatable: true, files: true),
        OptionSpec("volumes-from", value: "CONTAINER[:ro|rw]", help: "Bind the volumes (named and host paths) of another container, read-only with :ro", repeatable: true),
        OptionSpec("mount", value: "type=bind|volume|tmpfs,src=SRC,dst=DST[,ro]", help: "A mount, docker's long form: a host path, a named volume or a tmpfs (tmpfs-size=, tmpfs-mode=)", repeatable: true),
        OptionSpec("tmpfs", value: "DST[:OPTS]", help: "Mount a tmpfs (OPTS: size=64m,mode=1777,exec,...)", repeatable: true),
        OptionSpec("read-only", help: "Mount the container's root read-only"),
        OptionSpec("network", value: "MODE", help: "private (own network: slirp4netns, or pasta when ports are published), none (loopback only), host, pasta, slirp4netns, container:NAME (another container's); default: private when a helper can run, else none", choices: NetworkMode.names.filter { !$0.contains(":") }),
        OptionSpec("publish", short: "p", value: "[IP:]HOST:CONTAINER[/udp]", help: "Publish a container port on the host (ranges: 8000-8009:80-89)", repeatable: true),
        OptionSpec("publish-all", short: "P", help: "Publish every port the image exposes, each on a free host port"),
        OptionSpec("mtu", value: "BYTES", help: "MTU of the container's interface (default 65520)"),
        OptionSpec("dns", value: "IP", help: "A nameserver for /etc/resolv.conf (replaces the default)", repeatable: true),
        OptionSpec("dns-search", value: "DOMAIN", help: "A search domain for /etc/resolv.conf", repeatable: true),
        OptionSpec("dns-option", value: "OPTION", help: "An option line for /etc/resolv.conf (ndots:2, ...)", repeatable: true),
        OptionSpec("add-host", value: "NAME:IP", help: "Add a line to /etc/hosts", repeatable: true),
        OptionSpec("tty", short: "t", help: "Allocate a terminal in the container"),
        OptionSpec("interactive", short: "i", help: "Pass stdin to the container (an unnamed foreground run always does)"),
        OptionSpec("init", help: "Run a minimal init as PID 1 that reaps zombies and forwards signals"),
        OptionSpec("stop-signal", value: "SIGNAL", help: "Signal `urun stop` sends first (default SIGTERM)"),
        OptionSpec("ulimit", value: "NAME=SOFT[:HARD]", help: "A resource limit of the process, as setrlimit(2): nofile, nproc, core, stack, memlock, ... (-1: unlimited)", repeatable: true),
        OptionSpec("sysctl", value: "NAME=VALUE", help: "A namespaced kernel setting: net.* (with a network of its own), kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*", repeatable: true),
        OptionSpec("shm-size", value: "BYTES", help: "Size of /dev/shm (default 64m)"),
        OptionSpec("replace", help: "With --name: remove a container of that name first (stopping it), as podman's --replace"),
        OptionSpec("label-file", value: "FILE", help: "Read labels from FILE (KEY=VALUE lines; # comments)", repeatable: true, files: true),
        OptionSpec("expose", value: "PORT[/PROTO]", help: "Expose a port (or a range) besides the image's: -P publishes it, inspect lists it", repeatable: true),
        OptionSpec("domainname", value: "NAME", help: "The container's NIS domain name"),
        OptionSpec("oom-score-adj", value: "N", help: "The command's OOM score adjustment, -1000 to 1000 (unprivileged, only raising it works)"),
        OptionSpec("cgroupns", value: "MODE", help: "private (default: the container's cgroup is its root) or host (the host's cgroup tree)", choices: ["private", "host"]),
        OptionSpec("cpu-period", value: "MICROSECONDS", help: "CFS period (cpu.max; default 100000)"),
        OptionSpec("cpu-quota", value: "MICROSECONDS", help: "CPU time per period (cpu.max; -1: no limit)"),
        OptionSpec("quiet", short: "q", help: "Do not show the progress of a pull"),
        OptionSpec("label", short: "l", value: "KEY=VALUE", help: "A label of the container's own (inspect shows it with the image's)", repeatable: true),
        OptionSpec("env-host", help: "Pass all of urun's environment to the container (below -e and --env-file)"),
        OptionSpec("stop-timeout", value: "SECONDS", help: "Seconds `urun stop` waits before SIGKILL (default 10)"),
        OptionSpec("restart", value: "POLICY", help: "Restart the command when it exits: no (default), on-failure[:N] (a non-zero exit, at most N times), always, unless-stopped; the container's monitor restarts it (nothing does after a reboot: see urun generate systemd)"),
        OptionSpec("health-cmd", value: "COMMAND", help: "A shell command run in the container to check its health (exit 0: healthy)"),
        OptionSpec("health-interval", value: "DURATION", help: "Time between health checks (default 30s; 500ms, 1m30s, ...)"),
        OptionSpec("health-timeout", value: "DURATION", help: "Time a health check may take before it counts as failed (default 30s)"),
        OptionSpec("health-retries", value: "N", help: "Failures in a row that make the container unhealthy (default 3)"),
        OptionSpec("health-start-period", value: "DURATION", help: "Time after the start during which failures do not count (default 0s)"),
        OptionSpec("no-healthcheck", help: "Do not run the image's HEALTHCHECK"),
        OptionSpec("annotation", value: "KEY=VALUE", help: "An annotation of the container (OCI; inspect shows it)", repeatable: true),
        OptionSpec("cidfile", value: "FILE", help: "Write the container's id to FILE (which must not exist)", files: true),
        OptionSpec("device", value: "HOST[:CONTAINER[:rwm]]", help: "Bind a host device node you may open into the container (permissions are the node's own: no device cgroup rootless)", repeatable: true, files: true),
        OptionSpec("group-add", value: "GROUP", help: "A supplementary group of the command (a gid, or a name from the image's /etc/group); keep-groups: keep your own (needs them unmapped: they show as nogroup)", repeatable: true),
        OptionSpec("pid", value: "MODE", help: "host: the host's PID namespace (its /proc bound; needs a delegated cgroup), private (default)", choices: ["host", "private"]),
        OptionSpec("ipc", value: "MODE", help: "host: the host's IPC namespace, /dev/shm and /dev/mqueue; private (default)", choices: ["host", "private"]),
        OptionSpec("uts", value: "MODE", help: "host: the host's hostname and UTS namespace; private (default)", choices: ["host", "private"]),
        OptionSpec("userns", value: "MODE", help: "auto (subordinate ids from /etc/subuid when granted; the default), subids (require them), single (only your own id), or keep-id[:uid=N,gid=N] (your uid and gid the same inside, as podman's)", choices: UserNamespaceMode.allCases.map(\.rawValue)),
        OptionSpec("fake-root", value: "BOOL", help: "Make chown, setuid and device mknod succeed without effect (default: when only your own id is mapped)", choices: ["true", "false"], implicitValue: "true"),
        OptionSpec("cap-add", value: "CAP", help: "Add a capability (CHOWN or CAP_CHOWN; ALL for every one)", repeatable: true),
        OptionSpec("cap-drop", value: "CAP", help: "Drop a capability from docker's default 14 (ALL for every one)", repeatable: true),
        OptionSpec("privileged", help: "Every capability, no seccomp filter, no masked paths (still rootless)"),
        OptionSpec("security-opt", value: "OPT", help: "no-new-privileges=false, seccomp=unconfined|PROFILE.json, unmask=PATH|ALL", repeatable: true),
        OptionSpec("memory", short: "m", value: "BYTES", help: "Memory limit (memory.max), e.g. 512m, 2g"),
        OptionSpec("memory-swap", value: "BYTES", help: "Memory plus swap limit (-1: unlimited swap)"),
        OptionSpec("memory-reservation", value: "BYTES", help: "Memory soft limit (memory.low)"),
        OptionSpec("cpus", value: "NUMBER", help: "CPU quota in CPUs, e.g. 0.5 (cpu.max)"),
        OptionSpec("cpu-shares", short: "c", value: "SHARES", help: "CPU weight, docker's scale 2-262144 (cpu.weight)"),
        OptionSpec("cpu-weight", value: "WEIGHT", help: "CPU weight, 1-10000 (cpu.weight)"),
        OptionSpec("cpuset-cpus", value: "LIST", help: "CPUs to run on, e.g. 0-3,7 (cpuset.cpus)"),
        OptionSpec("cpuset-mems", value: "LIST", help: "Memory nodes to use (cpuset.mems)"),
        OptionSpec("pids-limit", value: "N", help: "Maximum number of processes (pids.max; -1: unlimited)"),
        OptionSpec("blkio-weight", value: "WEIGHT", help: "Block IO weight, 10-1000 (io.weight)"),
        OptionSpec("device-read-bps", value: "DEV:RATE", help: "Read rate limit for a device (io.max rbps)", repeatable: true),
        OptionSpec("device-write-bps", value: "DEV:RATE", help: "Write rate limit for a device (io.max wbps)", repeatable: true),
        OptionSpec("device-read-iops", value: "DEV:N", help: "Read IO/s limit for a device (io.max riops)", repeatable: true),
        OptionSpec("device-write-iops", value: "DEV:N", help: "Write IO/s limit for a device (io.max wiops)", repeatable: true),
        OptionSpec("explain", value: "FORMAT", help: "Narrate every kernel step as it happens (text, or json)", choices: ["text", "json"], implicitValue: "text"),
    ] + RegistryFlags.options

    static let arguments = [
        ArgumentSpec("IMAGE", help: "A rootfs tarball, an image archive (docker save, OCI; FILE:TAG picks one of several), a directory, an image in the cache by name or id, or a registry reference (pulled when missing; an existing path wins)", files: true),
        ArgumentSpec("COMMAND", help: "The command and its arguments (default: the image's, or /bin/sh)", optional: true, variadic: true),
    ]

    /// Options → ContainerSpec, validating everything before anything is created.
    static func containerSpec(from arguments: ParsedArguments) throws -> ContainerSpec {
        if let name = arguments.value("name") { try ContainerStore.validate(name: name) }
        var spec = ContainerSpec(image: arguments.positionals[0])
        spec.command = Array(arguments.positionals.dropFirst())
        for file in arguments.values("env-file") {
            let text = String(decoding: try readInputFile(file, what: "--env-file"), as: UTF8.self)
            spec.environment += try ContainerEnvironment.parseFile(text, path: file)
        }
        spec.environment += try ContainerEnvironment.fromFlags(arguments.values("env"))
        if let workdir = try plain(arguments, "workdir") {
            guard workdir.hasPrefix("/") else { throw UrunError.usage("--workdir \(printable(workdir)): must be an absolute path") }
            spec.workingDirectory = workdir
        }
        spec.user = try plain(arguments, "user")
        if let entrypoint = arguments.value("entrypoint") { spec.entrypoint = entrypoint.isEmpty ? [] : [entrypoint] }
        if let platform = arguments.value("platform") { spec.platform = try Platform.validated(platform) }
        spec.registry = try RegistryFlags.parse(arguments)
        // `--explain xml true`: "xml" is more likely a value typed without "=" than an image to fetch.
        spec.registry.pullsMissing = arguments.argumentAfterBareOption?.argument != spec.image
        if let pull = arguments.value("pull") {
            guard let policy = PullPolicy(rawValue: pull) else {
                throw UrunError.usage("--pull \(printable(pull)): expected \(PullPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            spec.registry.policy = policy
        }
        if let hostname = arguments.value("hostname") {
            guard HostName.isValid(hostname, maxLength: HostName.maxHostname) else {
                throw UrunError.usage("--hostname \(printable(hostname)): a hostname is 1 to \(HostName.maxHostname) letters, digits, '-', '_' or '.' (the kernel's limit is \(HostName.maxHostname) bytes)")
            }
            spec.hostname = hostname
        }
        spec.volumes = try arguments.values("volume").map { spec throws in try Volume.parse(spec) }
        spec.tmpfs = try arguments.values("tmpfs").map { spec throws in try TmpfsMount.parse(spec) }
        for text in arguments.values("mount") {
            switch try mount(text) {
            case .volume(let volume): spec.volumes.append(volume)
            case .tmpfs(let tmpfs): spec.tmpfs.append(tmpfs)
            }
        }
        spec.readOnly = arguments.flag("read-only")
        if let network = arguments.value("network") {
            guard let mode = NetworkMode(rawValue: network), mode != .auto else {
                throw UrunError.usage("--network \(network): expected \(NetworkMode.names.joined(separator: ", "))")
            }
            spec.network = mode
        }
        spec.ports = try arguments.values("publish").map { text throws in try PortMapping.parse(text) }
        spec.publishAll = arguments.flag("publish-all")
        if (!spec.ports.isEmpty || spec.publishAll) && (spec.network == .none || spec.network == .host) {
            throw UrunError.usage("-p and -P need --network private: with \(spec.network.rawValue) there is nothing to forward to")
        }
        if let other = spec.network.joinedContainer {
            // As docker: the network, its names and its ports are the other container's.
            let conflicting = ["publish", "publish-all", "hostname", "mtu", "dns", "dns-search", "dns-option", "add-host", "userns"]
            if let flag = conflicting.first(where: { arguments.has($0) }) {
                throw UrunError.usage("--\(flag) conflicts with --network container:\(other): the network and user namespace are that container's; set it there")
            }
        }
        if let mtu = try arguments.int("mtu") {
            guard (68...65520).contains(mtu) else { throw UrunError.usage("--mtu \(mtu): expected 68 to 65520") }
            spec.mtu = mtu
        }
        spec.dns = try arguments.values("dns").map { ip throws in
            guard isIPAddress(ip) else { throw UrunError.usage("--dns \(ip): not an IP address") }
            return ip
        }
        // These become lines of resolv.conf and hosts: a value is one word of
        // the characters DNS allows, so none can add a line of its own.
        spec.dnsSearch = try arguments.values("dns-search").map { domain throws in
            guard domain == "." || HostName.isValid(domain, maxLength: 253) else {
                throw UrunError.usage("--dns-search \(printable(domain)): expected a domain name (letters, digits, '-', '_' and '.', at most 253)")
            }
            return domain
        }
        spec.dnsOptions = try arguments.values("dns-option").map { option throws in
            guard !option.isEmpty, option.utf8.count <= 255, option.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }) else {
                throw UrunError.usage("--dns-option \(printable(option)): expected one resolv.conf option, such as ndots:2 (no spaces or control characters)")
            }
            return option
        }
        spec.extraHosts = try arguments.values("add-host").map { entry throws in
            // NAME:IP, where an IPv6 address has colons of its own.
            guard let colon = entry.firstIndex(of: ":"), colon != entry.startIndex,
                case let name = String(entry[..<colon]), HostName.isValid(name, maxLength: 253),
                case let ip = String(entry[entry.index(after: colon)...].filter { $0 != "[" && $0 != "]" }), isIPAddress(ip)
            else { throw UrunError.usage("--add-host \(printable(entry)): expected NAME:IP, the name of letters, digits, '-', '_' and '.'") }
            return name + ":" + ip
        }
        if let signal = arguments.value("stop-signal") {
            guard parseSignal(signal) != nil else { throw UrunError.usage("--stop-signal \(printable(signal)): not a signal") }
            spec.stopSignal = signal
        }
        spec.stopTimeout = try stopTimeout(arguments, "stop-timeout")
        spec.limits = try limits(from: arguments)
        spec.security = try security(from: arguments)
        if let mode = arguments.value("userns") {
            if mode == "keep-id" || mode.hasPrefix("keep-id:") {
                spec.userNamespace = .keepID
                spec.keepID = try keepID(mode)
                // The kept user runs the command (and `exec`), unless -u says otherwise.
                if spec.user == nil {
                    let (uid, gid) = spec.keepID ?? (getuid(), getgid())
                    spec.user = "\(uid):\(gid)"
                }
            } else {
                guard let parsed = UserNamespaceMode(rawValue: mode) else {
                    throw UrunError.usage("--userns \(printable(mode)): expected auto, subids, single or keep-id[:uid=N,gid=N]")
                }
                spec.userNamespace = parsed
            }
        }
        spec.useInit = arguments.flag("init")
        spec.tty = arguments.flag("tty")
        spec.interactive = arguments.flag("interactive")
        if arguments.flag("replace") && arguments.value("name") == nil {
            throw UrunError.usage("--replace needs --name: it replaces the container of that name")
        }
        for file in arguments.values("label-file") {
            let text = String(decoding: try readInputFile(file, what: "--label-file"), as: UTF8.self)
            let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: " \t") }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
            spec.labels.merge(try keyValues(lines, "--label-file \(printable(file)):")) { $1 }
        }
        spec.labels.merge(try keyValues(arguments.values("label"), "--label")) { $1 }
        spec.exposedPorts = try arguments.values("expose").flatMap(exposed)
        if let name = arguments.value("domainname") {
            guard HostName.isValid(name, maxLength: HostName.maxHostname) else {
                throw UrunError.usage("--domainname \(printable(name)): 1 to \(HostName.maxHostname) letters, digits, '-', '_' or '.'")
            }
            spec.domainname = name
        }
        if let adj = try arguments.int("oom-score-adj") {
            guard (-1000...1000).contains(adj) else { throw UrunError.usage("--oom-score-adj \(adj): expected -1000 to 1000") }
            // Lowering it needs CAP_SYS_RESOURCE on the host: say so now, not from inside the container.
            let own = (try? readText("/proc/self/oom_score_adj")).flatMap { Int($0.trimmingWhitespace()) } ?? 0
            if adj < own && geteuid() != 0 {
                throw UrunError.usage("--oom-score-adj \(adj): below urun's own (\(own)); only root may lower it, anyone may raise it")
            }
            spec.oomScoreAdj = adj
        }
        if let mode = arguments.value("cgroupns") {
            guard mode == "host" || mode == "private" else { throw UrunError.usage("--cgroupns \(printable(mode)): expected private or host") }
            spec.hostCgroupNamespace = mode == "host"
        }
        spec.quietPull = arguments.flag("quiet")
        spec.annotations = try keyValues(arguments.values("annotation"), "--annotation")
        if let restart = arguments.value("restart") {
            spec.restart = try RestartPolicy(parsing: restart)
            if spec.restart != .no && arguments.flag("rm") {
                throw UrunError.usage("--restart \(restart) conflicts with --rm: a container removed when it exits cannot be restarted")
            }
        }
        spec.devices = try arguments.values("device").map { (text) throws in try DeviceMapping.parse(text) }
        spec.groupAdd = arguments.values("group-add")
        if spec.groupAdd.contains("keep-groups") && spec.groupAdd.count > 1 {
            throw UrunError.usage("--group-add keep-groups cannot be combined with other groups")
        }
        for shared in SharedNamespace.allCases {
            guard let mode = arguments.value(shared.rawValue) else { continue }
            guard mode == "host" || mode == "private" else {
                throw UrunError.usage("--\(shared.rawValue) \(printable(mode)): expected host or private (joining another container's is not supported)")
            }
            if mode == "host" { spec.hostNamespaces.insert(shared) }
        }
        if spec.hostNamespaces.contains(.uts) && (spec.hostname != nil || spec.domainname != nil) {
            throw UrunError.usage("--\(spec.hostname != nil ? "hostname" : "domainname") conflicts with --uts host: the names are the host's")
        }
        (spec.healthCheck, spec.healthSettings) = try healthCheck(arguments)
        spec.healthCheckDisabled = arguments.flag("no-healthcheck")
        if spec.healthCheckDisabled && spec.healthCheck != nil {
            throw UrunError.usage("--no-healthcheck conflicts with --health-cmd")
        }
        spec.ulimits = try arguments.values("ulimit").map(ulimit)
        spec.sysctls = try arguments.values("sysctl").map { (text) throws in try sysctl(text, network: spec.network) }
        spec.shmSize = try arguments.value("shm-size").map { (text) throws(UrunError) in try ResourceLimits.bytes(text, flag: "--shm-size") }
        if spec.shmSize == 0 { throw UrunError.usage("--shm-size 0: /dev/shm needs some room") }
        if arguments.flag("env-host") {
            // Below -e and --env-file, which come later and win.
            var inherited: [String] = []
            var entry = environ
            while let pointer = entry.pointee {
                inherited.append(String(cString: pointer))
                entry += 1
            }
            spec.environment = inherited + spec.environment
        }
        return spec
    }

    enum Mount {
        case volume(Volume)
        case tmpfs(TmpfsMount)
    }

    /// docker's `--mount type=bind,src=/a,dst=/b,readonly`: the same mounts as -v and --tmpfs, spelled out.
    static func mount(_ text: String) throws -> Mount {
        var fields: [String: String] = [:]
        var readOnly = false
        for field in text.split(separator: ",").map(String.init) {
            let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
            let key = parts[0]
            if parts.count == 1 {
                guard key == "ro" || key == "readonly" else { throw UrunError.usage("--mount \(printable(text)): \(printable(key)) needs a value") }
                readOnly = true
                continue
            }
            if key == "ro" || key == "readonly" {
                readOnly = parts[1] == "true" || parts[1] == "1"
                continue
            }
            let canonical = ["source": "src", "destination": "dst", "target": "dst"][key] ?? key
            fields[canonical] = parts[1]
        }
        guard let target = fields["dst"] else { throw UrunError.usage("--mount \(printable(text)): dst= is missing") }
        switch fields["type"] ?? "volume" {
        case "bind":
            guard let source = fields["src"], source.hasPrefix("/") || source.hasPrefix(".") else {
                throw UrunError.usage("--mount \(printable(text)): a bind needs src= a path")
            }
            return .volume(try Volume.parse(source + ":" + target + (readOnly ? ":ro" : "")))
        case "volume":
            guard let name = fields["src"], Volume.isName(name) else {
                throw UrunError.usage("--mount \(printable(text)): a volume needs src= a volume name")
            }
            let options = (readOnly ? ["ro"] : []) + (["true", "1"].contains(fields["volume-nocopy"] ?? "") ? ["nocopy"] : [])
            return .volume(try Volume.parse(name + ":" + target + (options.isEmpty ? "" : ":" + options.joined(separator: ","))))
        case "tmpfs":
            var options: [String] = []
            if let size = fields["tmpfs-size"] { options.append("size=" + size) }
            if let mode = fields["tmpfs-mode"] { options.append("mode=" + mode) }
            if readOnly { options.append("ro") }
            return .tmpfs(try TmpfsMount.parse(target + (options.isEmpty ? "" : ":" + options.joined(separator: ","))))
        case let other:
            throw UrunError.usage("--mount \(printable(text)): type \(printable(other)) is not bind, volume or tmpfs")
        }
    }

    /// --replace: the container named --name goes first, as `rm -f` would take it.
    static func replaceNamed(_ arguments: ParsedArguments, in containers: Containers) throws {
        guard arguments.flag("replace"), let name = arguments.value("name") else { return }
        guard let existing = containers.store.all().first(where: { $0.name == name }) else { return }
        try containers.remove(existing, force: true)
    }

    /// `keep-id:uid=1000,gid=1000`: the ids kept inside (nil: the caller's own).
    static func keepID(_ mode: String) throws -> (uid: UInt32, gid: UInt32)? {
        guard mode != "keep-id" else { return nil }
        var uid = getuid()
        var gid = getgid()
        for option in mode.dropFirst("keep-id:".count).split(separator: ",") {
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let value = UInt32(parts[1]), value < UInt32.max - 1 else {
                throw UrunError.usage("--userns \(printable(mode)): expected keep-id[:uid=N,gid=N]")
            }
            switch parts[0] {
            case "uid": uid = value
            case "gid": gid = value
            default: throw UrunError.usage("--userns \(printable(mode)): expected keep-id[:uid=N,gid=N]")
            }
        }
        return (uid, gid)
    }

    /// docker's --ulimit names, as setrlimit(2) knows them.
    static let ulimitNames = [
        "cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile", "memlock", "as", "locks", "sigpending",
        "msgqueue", "nice", "rtprio", "rttime",
    ]

    /// `--ulimit nofile=1024:4096`: the RLIMIT_ number (its index above) and the limits; -1 is unlimited.
    static func ulimit(_ text: String) throws -> (resource: CInt, soft: UInt64, hard: UInt64) {
        let failure = UrunError.usage("--ulimit \(printable(text)): expected NAME=SOFT[:HARD], NAME one of \(ulimitNames.joined(separator: ", "))")
        guard let equals = text.firstIndex(of: "="), let resource = ulimitNames.firstIndex(of: String(text[..<equals])) else { throw failure }
        let values = text[text.index(after: equals)...].split(separator: ":", omittingEmptySubsequences: false)
        func value(_ part: Substring) throws -> UInt64 {
            if part == "-1" { return UInt64(bitPattern: -1) }  // RLIM_INFINITY
            guard let number = UInt64(part), number < UInt64(bitPattern: -1) else { throw failure }
            return number
        }
        guard (1...2).contains(values.count) else { throw failure }
        let soft = try value(values[0])
        let hard = values.count == 2 ? try value(values[1]) : soft
        guard soft <= hard else { throw UrunError.usage("--ulimit \(printable(text)): the soft limit is above the hard one") }
        return (CInt(resource), soft, hard)
    }

    /// Namespaced sysctls only, as docker allows them: each is the container's
    /// own. net.* needs a network namespace of the container's own.
    static func sysctl(_ text: String, network: NetworkMode) throws -> (name: String, value: String) {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw UrunError.usage("--sysctl \(printable(text)): expected NAME=VALUE")
        }
        let name = String(text[..<equals])
        let value = String(text[text.index(after: equals)...])
        let kernel = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]
        let valid = name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
            && !name.contains("..") && !hasControlCharacters(value) && !value.isEmpty
        guard valid, kernel.contains(name) || name.hasPrefix("fs.mqueue.") || name.hasPrefix("net.") else {
            throw UrunError.usage("--sysctl \(printable(name)): not a namespaced sysctl (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*): the host's would change")
        }
        if name.hasPrefix("net."), !network.createsNamespace || network == .host {
            throw UrunError.usage("--sysctl \(printable(name)): net.* sysctls need the container's own network (not --network \(network.rawValue))")
        }
        return (name, value)
    }

    /// Resource limit flags → ResourceLimits, every value checked now.
    static func limits(from arguments: ParsedArguments) throws -> ResourceLimits {
        var limits = ResourceLimits()
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let value = arguments.value("memory") { try limits.setMemory(value) }
        if let value = arguments.value("memory-swap") { try limits.setMemorySwap(value) }
        if let value = arguments.value("memory-reservation") { try limits.setMemoryReservation(value) }
        if let value = arguments.value("cpus") { try limits.setCPUs(value, available: cpus) }
        if let value = arguments.value("cpu-shares") { try limits.setCPUShares(value) }
        if let value = arguments.value("cpu-weight") { try limits.setCPUWeight(value) }
        try limits.setCPUQuota(quota: arguments.value("cpu-quota"), period: arguments.value("cpu-period"))
        if let value = arguments.value("cpuset-cpus") { try limits.setCPUSet(value, mems: false, available: cpus) }
        if let value = arguments.value("cpuset-mems") { try limits.setCPUSet(value, mems: true, available: cpus) }
        if let value = arguments.value("pids-limit") { try limits.setPidsLimit(value) }
        if let value = arguments.value("blkio-weight") { try limits.setBlkioWeight(value) }
        for (flag, kind) in [
            ("device-read-bps", ResourceLimits.DeviceLimit.readBPS), ("device-write-bps", .writeBPS),
            ("device-read-iops", .readIOPS), ("device-write-iops", .writeIOPS),
        ] {
            for value in arguments.values(flag) { try limits.setDeviceLimit(value, kind) }
        }
        return limits
    }

    /// --cap-add, --cap-drop, --privileged, --security-opt → SecurityPolicy;
    /// a seccomp profile is read and checked now, so a bad one fails before
    /// anything is created.
    static func security(from arguments: ParsedArguments) throws -> SecurityPolicy {
        var policy = SecurityPolicy()
        policy.capabilities = try Capabilities.resolve(
            adding: arguments.values("cap-add"), dropping: arguments.values("cap-drop"))
        policy.privileged = arguments.flag("privileged")
        if let fake = arguments.value("fake-root") {
            guard fake == "true" || fake == "false" else {
                throw UrunError.usage("invalid value \"\(printable(fake))\" for --fake-root: true or false")
            }
            policy.fakeRoot = fake == "true"
        }
        for option in arguments.values("security-opt") {
            try policy.apply(option: option) { (path) throws(UrunError) in
                String(decoding: try readInputFile(path, what: "--security-opt seccomp="), as: UTF8.self)
            }
        }
        return policy
    }

    /// --explain[=json]
    static func startExplaining(_ arguments: ParsedArguments) throws {
        switch arguments.value("explain") {
        case nil: break
        case "text": Explain.start(.text)
        case "json": Explain.start(.json)
        case let other?: throw UrunError.usage("invalid value \"\(printable(other))\" for --explain: text or json")
        }
    }

    /// A value kept in the record as it is (a user, a directory): a control
    /// character there is a mistake or an attack, never a name.
    static func plain(_ arguments: ParsedArguments, _ flag: String) throws -> String? {
        guard let value = arguments.value(flag) else { return nil }
        guard !hasControlCharacters(value) else {
            throw UrunError.usage("--\(flag) \(printable(value)): control characters are not allowed")
        }
        return value
    }

    /// --volumes-from C[:ro|rw]: C's volumes at the same targets, unless this
    /// run binds something there itself; :ro or :rw overrides each one's mode.
    static func volumesFrom(_ arguments: ParsedArguments, in store: ContainerStore, into spec: inout ContainerSpec) throws {
        for text in arguments.values("volumes-from") {
            let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 1 || parts[1] == "ro" || parts[1] == "rw", let name = parts.first else {
                throw UrunError.usage("--volumes-from \(printable(text)): expected CONTAINER[:ro|rw]")
            }
            let record = try store.resolve(name)
            for volume in record.spec.volumes where !spec.volumes.contains(where: { $0.target == volume.target }) {
                spec.volumes.append(Volume(source: volume.source, target: volume.target, readOnly: parts.count == 2 ? parts[1] == "ro" : volume.readOnly))
            }
        }
    }

    /// --expose PORT[-END][/tcp|udp]: "80/tcp" for each port, as the image's ExposedPorts lists them.
    static func exposed(_ text: String) throws -> [String] {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        let proto = parts.count == 2 ? parts[1] : "tcp"
        let bounds = parts.first.map { $0.split(separator: "-", maxSplits: 1).map { Int($0) } } ?? []
        guard proto == "tcp" || proto == "udp", let low = bounds.first ?? nil, let high = bounds.last ?? nil,
            (1...65535).contains(low), (low...65535).contains(high), high - low < 1024
        else { throw UrunError.usage("--expose \(printable(text)): expected PORT or START-END (1 to 65535, at most 1024 ports), then /tcp or /udp") }
        return (low...high).map { "\($0)/\(proto)" }
    }

    /// --cidfile FILE, refused before anything is created if FILE exists (as docker).
    static func cidfile(_ arguments: ParsedArguments) throws -> String? {
        guard let path = arguments.value("cidfile") else { return nil }
        guard !path.isEmpty, fileStatus(path) == nil else {
            throw UrunError.usage("--cidfile \(printable(path)): the file exists (another container's id?); remove it or name another")
        }
        return path
    }

    /// Writes the new container's id; the container goes again if it cannot be written.
    static func writeCidfile(_ path: String?, _ record: ContainerRecord, _ containers: Containers) throws {
        guard let path else { return }
        do throws(UrunError) {
            try writeFile(path, record.id, mode: 0o644, flags: O_CREAT | O_EXCL)
        } catch {
            try? containers.remove(record, force: true)
            throw error
        }
    }

    /// KEY=VALUE entries (--label, --annotation, a --label-file's lines),
    /// named in errors by `what`; KEY alone is an empty value.
    static func keyValues(_ entries: [String], _ what: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard !parts[0].isEmpty, !hasControlCharacters(entry) else { throw UrunError.usage("\(what) \(printable(entry)): expected KEY=VALUE") }
            result[parts[0]] = parts.count == 2 ? parts[1] : ""
        }
        return result
    }

    /// --health-cmd with its settings; the settings alone change the image's check.
    static func healthCheck(_ arguments: ParsedArguments) throws -> (HealthCheck?, HealthSettings) {
        let settings = try healthSettings(arguments)
        guard let command = arguments.value("health-cmd") else { return (nil, settings) }
        guard !command.isEmpty else { throw UrunError.usage("--health-cmd: the command is empty (--no-healthcheck turns the image's off)") }
        var check = HealthCheck(shellCommand: command)
        settings.apply(to: &check)
        return (check, settings)
    }

    static func healthSettings(_ arguments: ParsedArguments) throws -> HealthSettings {
        var settings = HealthSettings()
        func duration(_ flag: String, minimum: Int) throws -> Int? {
            guard let text = arguments.value(flag) else { return nil }
            guard let value = HealthCheck.milliseconds(text), value >= minimum else {
                throw UrunError.usage("--\(flag) \(printable(text)): expected a duration such as 500ms, 30s or 1m30s\(minimum > 0 ? ", above 0" : ""), at most a year")
            }
            return value
        }
        settings.intervalMilliseconds = try duration("health-interval", minimum: 1)
        settings.timeoutMilliseconds = try duration("health-timeout", minimum: 1)
        settings.startPeriodMilliseconds = try duration("health-start-period", minimum: 0)
        if let retries = try arguments.int("health-retries") {
            guard (1...1_000_000).contains(retries) else { throw UrunError.usage("--health-retries \(retries): expected 1 to 1000000") }
            settings.retries = retries
        }
        return settings
    }

    /// A number of seconds for a stop timeout: 0 up to what poll(2) can wait.
    static func stopTimeout(_ arguments: ParsedArguments, _ flag: String) throws -> Int? {
        guard let seconds = try arguments.int(flag) else { return nil }
        guard (0...maxStopTimeout).contains(seconds) else {
            throw UrunError.usage("--\(flag) \(seconds): expected 0 to \(maxStopTimeout) seconds")
        }
        return seconds
    }

    /// Seconds whose milliseconds fit poll(2)'s int: about 24 days.
    static let maxStopTimeout = Int(Int32.max / 1000)
}

/// Host and domain names as urun accepts them in --hostname, --add-host and
/// --dns-search: letters, digits, '-', '_' and '.', and no longer than the
/// field they go into.
enum HostName {
    /// HOST_NAME_MAX: sethostname(2) refuses more.
    static let maxHostname = 64

    static func isValid(_ name: String, maxLength: Int) -> Bool {
        !name.isEmpty && name.utf8.count <= maxLength
            && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
    }
}

/// Whether `text` is an IPv4 or IPv6 address.
func isIPAddress(_ text: String) -> Bool {
    var buffer = [UInt8](repeating: 0, count: 16)
    return inet_pton(AF_INET, text, &buffer) == 1 || inet_pton(AF_INET6, text, &buffer) == 1
}
