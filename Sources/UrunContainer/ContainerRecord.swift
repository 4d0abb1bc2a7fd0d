import Glibc
import UrunCgroups
import UrunImage
import UrunKernel
import UrunNetwork
import UrunProcess
import UrunRootfs
import UrunSecurity
import UrunUserNS

/// What `urun create` (or `run` of a kept container) writes to config.json:
/// everything needed to start the container again.
public struct ContainerRecord: Sendable {
    public var id: String
    public var name: String
    public var created: Timestamp
    /// The image's id in the cache; nil for a directory used as the root.
    public var imageID: String?
    /// The directory, for a directory image.
    public var rootfsDirectory: String?
    public var spec: ContainerSpec
    /// --rm: remove the container when it exits.
    public var autoRemove: Bool

    public init(
        id: String, name: String, created: Timestamp, image: Image, spec: ContainerSpec, autoRemove: Bool
    ) {
        self.id = id
        self.name = name
        self.created = created
        self.imageID = image.id
        self.rootfsDirectory = image.id == nil ? image.layerPaths.first : nil
        self.spec = spec
        self.autoRemove = autoRemove
    }

    public var json: JSON {
        var object = JSON.object([
            ("id", .string(id)), ("name", .string(name)), ("created", .string(created.rfc3339)),
            ("image", .string(spec.image)), ("autoRemove", .bool(autoRemove)), ("spec", spec.json),
        ])
        if let imageID { object["imageID"] = .string(imageID) }
        if let rootfsDirectory { object["rootfsDirectory"] = .string(rootfsDirectory) }
        return object
    }

    public init(json: JSON) throws(UrunError) {
        guard let id = json["id"]?.string, let name = json["name"]?.string,
            let created = json["created"]?.string.flatMap(Timestamp.init(rfc3339:)), let spec = json["spec"]
        else { throw .invalid("a container's config.json is incomplete") }
        self.id = id
        self.name = name
        self.created = created
        self.imageID = json["imageID"]?.string
        self.rootfsDirectory = json["rootfsDirectory"]?.string
        self.spec = try ContainerSpec(json: spec)
        self.autoRemove = json["autoRemove"]?.bool ?? false
    }
}

extension ContainerSpec {
    var json: JSON {
        var object = JSON.object([
            ("image", .string(image)),
            ("command", .array(command.map(JSON.string))),
            ("env", .array(environment.map(JSON.string))),
            ("imageEnv", .array(imageEnvironment.map(JSON.string))),
            ("readOnly", .bool(readOnly)),
            ("network", .string(network.rawValue)),
            ("tty", .bool(tty)),
            ("interactive", .bool(interactive)),
            ("init", .bool(useInit)),
            ("volumes", .array(volumes.map {
                .object([("source", .string($0.source)), ("target", .string($0.target)), ("readOnly", .bool($0.readOnly)),
                         ("populate", .bool($0.populate)), ("chown", .bool($0.chownToUser))])
            })),
            ("tmpfs", .array(tmpfs.map { .object([("target", .string($0.target)), ("flags", .int($0.options.flags)), ("data", .string($0.options.data))]) })),
            ("limits", .array(limits.settings.map { .object([("flag", .string($0.flag)), ("controller", .string($0.controller)), ("file", .string($0.file)), ("value", .string($0.value))]) })),
        ])
        if let workingDirectory { object["workdir"] = .string(workingDirectory) }
        if let user { object["user"] = .string(user) }
        if let hostname { object["hostname"] = .string(hostname) }
        if let stopSignal { object["stopSignal"] = .string(stopSignal) }
        if let stopTimeout { object["stopTimeout"] = .int(stopTimeout) }
        if let platform { object["platform"] = .string(platform) }
        object["security"] = security.json
        object["userns"] = .string(userNamespace.rawValue)
        if !ports.isEmpty { object["ports"] = .array(ports.map { .string($0.flag) }) }
        if publishAll { object["publishAll"] = .bool(true) }
        if let mtu { object["mtu"] = .int(mtu) }
        if !dns.isEmpty { object["dns"] = .array(dns.map(JSON.string)) }
        if !dnsSearch.isEmpty { object["dnsSearch"] = .array(dnsSearch.map(JSON.string)) }
        if !dnsOptions.isEmpty { object["dnsOptions"] = .array(dnsOptions.map(JSON.string)) }
        if !extraHosts.isEmpty { object["extraHosts"] = .array(extraHosts.map(JSON.string)) }
        if !ulimits.isEmpty {
            object["ulimits"] = .array(ulimits.map { .object([("resource", .int($0.resource)), ("soft", .int($0.soft)), ("hard", .int($0.hard))]) })
        }
        if !sysctls.isEmpty { object["sysctls"] = .object(sysctls.map { ($0.name, .string($0.value)) }) }
        if let shmSize { object["shmSize"] = .int(shmSize) }
        if !labels.isEmpty { object["labels"] = .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }) }
        if let keepID { object["keepID"] = .object([("uid", .int(keepID.uid)), ("gid", .int(keepID.gid))]) }
        if restart != .no { object["restart"] = .string(restart.text) }
        if let healthCheck { object["healthCheck"] = healthCheck.json }
        if healthCheckDisabled { object["noHealthCheck"] = .bool(true) }
        if let domainname { object["domainname"] = .string(domainname) }
        if let oomScoreAdj { object["oomScoreAdj"] = .int(oomScoreAdj) }
        if hostCgroupNamespace { object["cgroupns"] = .string("host") }
        if !exposedPorts.isEmpty { object["expose"] = .array(exposedPorts.map(JSON.string)) }
        if !devices.isEmpty { object["devices"] = .array(devices.map { .string($0.flag) }) }
        if !groupAdd.isEmpty { object["groupAdd"] = .array(groupAdd.map(JSON.string)) }
        if !hostNamespaces.isEmpty { object["hostNamespaces"] = .array(hostNamespaces.map(\.rawValue).sorted().map(JSON.string)) }
        if !annotations.isEmpty { object["annotations"] = .object(annotations.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }) }
        return object
    }

    init(json: JSON) throws(UrunError) {
        guard let image = json["image"]?.string else { throw .invalid("a container's config.json names no image") }
        self.init(image: image)
        command = json["command"]?.strings ?? []
        environment = json["env"]?.strings ?? []
        imageEnvironment = json["imageEnv"]?.strings ?? []
        platform = json["platform"]?.string
        workingDirectory = json["workdir"]?.string
        user = json["user"]?.string
        hostname = json["hostname"]?.string
        readOnly = json["readOnly"]?.bool ?? false
        network = json["network"]?.string.flatMap(NetworkMode.init(rawValue:)) ?? .auto
        ports = try (json["ports"]?.strings ?? []).map { text throws(UrunError) in try PortMapping.parse(text) }
        publishAll = json["publishAll"]?.bool ?? false
        mtu = json["mtu"]?.int
        dns = json["dns"]?.strings ?? []
        dnsSearch = json["dnsSearch"]?.strings ?? []
        dnsOptions = json["dnsOptions"]?.strings ?? []
        extraHosts = json["extraHosts"]?.strings ?? []
        ulimits = (json["ulimits"]?.array ?? []).compactMap { u in
            guard let resource = u["resource"]?.integer(CInt.self), (0..<16).contains(resource),
                let soft = u["soft"]?.uint64, let hard = u["hard"]?.uint64, soft <= hard
            else { return nil }
            return (resource, soft, hard)
        }
        sysctls = (json["sysctls"]?.members ?? []).compactMap { name, value in value.string.map { (name, $0) } }
        shmSize = json["shmSize"]?.uint64
        for (key, value) in json["labels"]?.members ?? [] { labels[key] = value.string ?? "" }
        for (key, value) in json["annotations"]?.members ?? [] { annotations[key] = value.string ?? "" }
        restart = (try? RestartPolicy(parsing: json["restart"]?.string ?? "no")) ?? .no
        healthCheck = HealthCheck(json: json["healthCheck"])
        healthCheckDisabled = json["noHealthCheck"]?.bool ?? false
        groupAdd = json["groupAdd"]?.strings ?? []
        domainname = json["domainname"]?.string
        oomScoreAdj = json["oomScoreAdj"]?.int.flatMap { (-1000...1000).contains($0) ? $0 : nil }
        hostCgroupNamespace = json["cgroupns"]?.string == "host"
        exposedPorts = json["expose"]?.strings ?? []
        devices = (json["devices"]?.strings ?? []).compactMap { try? DeviceMapping.parse($0) }
        hostNamespaces = Set((json["hostNamespaces"]?.strings ?? []).compactMap(SharedNamespace.init(rawValue:)))
        if let uid = json["keepID"]?["uid"]?.integer(UInt32.self), let gid = json["keepID"]?["gid"]?.integer(UInt32.self) {
            keepID = (uid, gid)
        }
        tty = json["tty"]?.bool ?? false
        interactive = json["interactive"]?.bool ?? false
        useInit = json["init"]?.bool ?? false
        stopSignal = json["stopSignal"]?.string
        stopTimeout = json["stopTimeout"]?.int
        userNamespace = json["userns"]?.string.flatMap(UserNamespaceMode.init(rawValue:)) ?? .auto
        if let security = json["security"] { self.security = try SecurityPolicy(json: security) }
        volumes = (json["volumes"]?.array ?? []).compactMap { v in
            guard let source = v["source"]?.string, let target = v["target"]?.string else { return nil }
            var volume = Volume(source: source, target: target, readOnly: v["readOnly"]?.bool ?? false)
            volume.populate = v["populate"]?.bool ?? false
            volume.chownToUser = v["chown"]?.bool ?? false
            return volume
        }
        tmpfs = (json["tmpfs"]?.array ?? []).compactMap { t in
            guard let target = t["target"]?.string, let flags = t["flags"]?.integer(UInt.self) else { return nil }
            return TmpfsMount(target: target, options: TmpfsOptions(flags: flags, data: t["data"]?.string ?? ""))
        }
        limits = ResourceLimits(
            settings: (json["limits"]?.array ?? []).compactMap { l in
                guard let flag = l["flag"]?.string, let controller = l["controller"]?.string,
                    let file = l["file"]?.string, let value = l["value"]?.string
                else { return nil }
                return ResourceLimits.Setting(flag: flag, controller: controller, file: file, value: value)
            })
    }
}

/// A container's life, as docker names its states.
public enum ContainerStatus: String, Sendable {
    case created, running, paused, exited
    /// Exited, and its monitor will start it again (--restart) after a back-off.
    case restarting
    /// `rm` has begun (removing.json): nothing starts it; `rm` finishes it.
    case removing

    /// "Up", as docker's ps says it: the command runs, or is frozen.
    public var isUp: Bool { self == .running || self == .paused }
    /// Up, or waiting for its monitor to restart it: what `ps` lists, and
    /// what `start` finds started and `rm` will not remove without -f.
    public var isActive: Bool { isUp || self == .restarting }
}

/// What the supervisor of a container keeps in state.json (runtime directory).
public struct ContainerState: Sendable {
    public var status: ContainerStatus = .created
    /// PID 1 of the container, on the host.
    public var pid: Int32 = 0
    /// Its start time (field 22 of /proc/PID/stat), so that a recycled pid is never mistaken for it.
    public var pidStartTime: UInt64 = 0
    public var startedAt: Timestamp?
    public var finishedAt: Timestamp?
    /// nil while running, or when the supervisor died and the status is unknown.
    public var exitCode: Int32?
    public var oomKilled = false
    public var cgroup: String?
    /// Published ports as they were bound ("0.0.0.0:8080->80/tcp").
    public var ports: [String] = []
    /// The supervisor (a monitor) while it runs: recorded before the
    /// container starts, so whatever else a full disk keeps from being
    /// written, `rm -f` can always find what to kill.
    public var monitor: ProcessIdentity?
    /// How many times its monitor has restarted it (--restart), since `urun start`.
    public var restartCount = 0

    /// The command has ended with `code` (nil: unknown) now.
    public mutating func recordExit(code: Int32?) {
        status = .exited
        exitCode = code
        finishedAt = .now()
        pid = 0
    }

    public init() {}

    public var json: JSON {
        var object = JSON.object([
            ("status", .string(status.rawValue)), ("pid", .int(pid)), ("pidStartTime", .int(pidStartTime)),
            ("oomKilled", .bool(oomKilled)),
        ])
        if let startedAt { object["startedAt"] = .string(startedAt.rfc3339) }
        if let finishedAt { object["finishedAt"] = .string(finishedAt.rfc3339) }
        if let exitCode { object["exitCode"] = .int(exitCode) }
        if let cgroup { object["cgroup"] = .string(cgroup) }
        if !ports.isEmpty { object["ports"] = .array(ports.map(JSON.string)) }
        if restartCount > 0 { object["restartCount"] = .int(restartCount) }
        if let monitor {
            object["monitorPid"] = .int(monitor.pid)
            object["monitorStartTime"] = .int(monitor.startTime)
        }
        return object
    }

    public init(json: JSON) {
        status = json["status"]?.string.flatMap(ContainerStatus.init(rawValue:)) ?? .created
        pid = json["pid"]?.integer(Int32.self) ?? 0
        pidStartTime = json["pidStartTime"]?.uint64 ?? 0
        startedAt = json["startedAt"]?.string.flatMap(Timestamp.init(rfc3339:))
        finishedAt = json["finishedAt"]?.string.flatMap(Timestamp.init(rfc3339:))
        exitCode = json["exitCode"]?.integer(Int32.self)
        oomKilled = json["oomKilled"]?.bool ?? false
        cgroup = json["cgroup"]?.string
        ports = json["ports"]?.strings ?? []
        restartCount = max(0, json["restartCount"]?.int ?? 0)
        if let pid = json["monitorPid"]?.integer(pid_t.self), let start = json["monitorStartTime"]?.uint64 {
            monitor = ProcessIdentity(pid: pid, startTime: start)
        }
    }
}
