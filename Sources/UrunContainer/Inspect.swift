import Glibc
import UrunCgroups
import UrunImage
import UrunKernel
import UrunProcess
import UrunUserNS

extension Containers {
    /// `urun inspect`: what docker users look for, in docker's shape.
    public func inspect(_ record: ContainerRecord) -> JSON {
        let state = store.state(record.id)
        let spec = record.spec
        let command = spec.effectiveCommand
        var stateJSON = JSON.object([
            ("Status", .string(state.status.rawValue)), ("Running", .bool(state.status.isUp)),
            ("Paused", .bool(state.status == .paused)), ("OOMKilled", .bool(state.oomKilled)), ("Pid", .int(state.pid)),
            ("ExitCode", state.exitCode.map { .int($0) } ?? .null),
            ("StartedAt", .string(state.startedAt?.rfc3339 ?? "")), ("FinishedAt", .string(state.finishedAt?.rfc3339 ?? "")),
        ])
        stateJSON["Restarting"] = .bool(state.status == .restarting)
        if spec.healthCheck != nil {
            stateJSON["Health"] = (store.health(record.id) ?? HealthState()).json
        }
        if state.status == .exited && state.exitCode == nil {
            stateJSON["Error"] = .string("the exit status was not recorded: its supervisor was killed, or could not write the state (a full disk)")
        }
        var mounts: [JSON] = spec.volumes.map {
            .object([("Type", .string("bind")), ("Source", .string($0.source)), ("Destination", .string($0.target)), ("RW", .bool(!$0.readOnly))])
        }
        mounts += spec.tmpfs.map { .object([("Type", .string("tmpfs")), ("Destination", .string($0.target)), ("Options", .string($0.options.data))]) }
        // The namespaces the container made: a joined container's user and network ones are the other's.
        var namespaces: [JSON] = (spec.network.joinedContainer == nil ? ["user"] : []).map(JSON.string)
        let own = ["mnt", "pid", "uts", "ipc"] + (spec.hostCgroupNamespace ? [] : ["cgroup"])
        namespaces += own.filter { SharedNamespace(rawValue: $0).map { !spec.hostNamespaces.contains($0) } ?? true }.map(JSON.string)
        if spec.network.createsNamespace { namespaces.append(.string("net")) }
        let limits = JSON.object(spec.limits.settings.map { ($0.file, .string($0.value)) })
        var statsJSON: JSON = .null
        if let path = state.cgroup, state.status.isUp {
            let stats = Cgroup(path: path).statistics()
            var object = JSON.object([])
            if let v = stats.memoryBytes { object["MemoryBytes"] = .int(v) }
            if let v = stats.cpuMicroseconds { object["CPUMicroseconds"] = .int(v) }
            if let v = stats.processes { object["Pids"] = .int(v) }
            if let v = stats.ioReadBytes { object["IOReadBytes"] = .int(v) }
            if let v = stats.ioWrittenBytes { object["IOWrittenBytes"] = .int(v) }
            statsJSON = object
        }
        let image: JSON = record.imageID.map { JSON.string("sha256:" + $0) } ?? JSON.null
        let lower: [String]
        var imageConfig: ImageConfig?
        if let directory = record.rootfsDirectory {
            lower = [directory]
        } else {
            let images = ImageStore(directory: store.paths.cache, mapping: try? spec.subordinateMapping())
            let imageRecord = record.imageID.flatMap { ImageRecord.read(images.recordPath($0)) }
            imageConfig = imageRecord?.config
            lower = (imageRecord?.layers ?? []).reversed().map { images.layersDirectory + "/" + images.layerName($0) }
        }
        let rootfs = JSON.object([
            ("Lower", .array(lower.map(JSON.string))), ("Upper", JSON.string(store.directory(record.id) + "/upper")),
        ])
        var config = JSON.object([])
        config["Hostname"] = .string(spec.hostname ?? String(record.id.prefix(12)))
        config["User"] = .string(spec.user ?? "")
        // As docker shows them: the image's environment below the container's own, the image's
        // entrypoint, exposed ports (and the published ones) and labels (below --label).
        var environment: [String] = []
        for entry in spec.imageEnvironment + spec.environment {
            let key = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
            environment.removeAll { $0 == key || $0.hasPrefix(key + "=") }
            environment.append(entry)
        }
        config["Env"] = .array(environment.map(JSON.string))
        config["Cmd"] = .array(command.map(JSON.string))
        config["Entrypoint"] = imageConfig?.entrypoint.map { .array($0.map(JSON.string)) } ?? .null
        config["Image"] = .string(spec.image)
        let exposed = Set((imageConfig?.exposedPorts ?? []) + spec.exposedPorts + spec.ports.map { "\($0.containerPort)/\($0.proto.rawValue)" })
        config["ExposedPorts"] = .object(exposed.sorted().map { ($0, .object([])) })
        let labels = (imageConfig?.labels ?? [:]).merging(spec.labels) { $1 }
        config["Labels"] = .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
        config["WorkingDir"] = .string(spec.workingDirectory ?? "/")
        config["Tty"] = .bool(spec.tty)
        config["OpenStdin"] = .bool(spec.interactive)
        config["StopSignal"] = .string(spec.stopSignal ?? "SIGTERM")
        config["StopTimeout"] = .int(spec.stopTimeout ?? 10)
        if let check = spec.healthCheck { config["Healthcheck"] = check.dockerJSON }
        if !spec.annotations.isEmpty {
            config["Annotations"] = .object(spec.annotations.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
        }
        var host = JSON.object([])
        host["NetworkMode"] = .string(spec.network.rawValue)
        for (shared, key) in [(SharedNamespace.pid, "PidMode"), (.ipc, "IpcMode"), (.uts, "UTSMode")] {
            host[key] = .string(spec.hostNamespaces.contains(shared) ? "host" : "private")
        }
        host["ReadonlyRootfs"] = .bool(spec.readOnly)
        host["AutoRemove"] = .bool(record.autoRemove)
        host["Init"] = .bool(spec.useInit)
        let maximumRetries: Int
        if case .onFailure(let maximum) = spec.restart { maximumRetries = maximum } else { maximumRetries = 0 }
        host["RestartPolicy"] = .object([("Name", .string(spec.restart.text)), ("MaximumRetryCount", .int(maximumRetries))])
        host["Limits"] = limits
        // Which ids exist inside: subordinate ranges, or only the caller's own
        // (then fake root, unless turned off). Docs/images.md explains both.
        let mapping = try? spec.subordinateMapping()
        let ranges = { (ranges: [IDRange]) in JSON.array(ranges.map { .string("\($0.inside):\($0.outside):\($0.count)") }) }
        host["UsernsMode"] = .string(spec.userNamespace.rawValue)
        // A running container's own maps say it exactly (--user changes the single map).
        func live(_ file: String) -> JSON? {
            guard state.status.isUp, state.pid > 0,
                let text = try? readText("/proc/\(state.pid)/\(file)")
            else { return nil }
            return .array(text.split(separator: "\n").map { .string($0.split(separator: " ").joined(separator: ":")) })
        }
        host["IDMappings"] = .object([
            ("UidMap", live("uid_map") ?? mapping.map { ranges($0.uids) } ?? .array([.string("0:\(getuid()):1")])),
            ("GidMap", live("gid_map") ?? mapping.map { ranges($0.gids) } ?? .array([.string("0:\(getgid()):1")])),
        ])
        host["FakeRoot"] = .bool(spec.security.fakesRoot(singleMapping: mapping == nil))
        var result = JSON.object([])
        result["Id"] = .string(record.id)
        result["Name"] = .string(record.name)
        result["Created"] = .string(record.created.rfc3339)
        result["Path"] = .string(command[0])
        result["Args"] = .array(command.dropFirst().map(JSON.string))
        result["State"] = stateJSON
        result["RestartCount"] = .int(state.restartCount)
        result["Image"] = .string(spec.image)
        result["ImageDigest"] = image
        result["Rootfs"] = rootfs
        result["LogPath"] = .string(store.logFile(record.id))
        result["Config"] = config
        result["HostConfig"] = host
        result["Mounts"] = .array(mounts)
        result["Namespaces"] = .array(namespaces)
        result["Cgroup"] = state.cgroup.map(JSON.string) ?? .null
        result["NetworkSettings"] = .object([
            ("Ports", .array((state.status.isUp ? state.ports : []).map(JSON.string))),
        ])
        result["Stats"] = statsJSON
        return result
    }
}
