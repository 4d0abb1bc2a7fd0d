import Glibc
import UrunCLI
import UrunCgroups
import UrunContainer
import UrunKernel

enum PsCommand: Command {
    static let spec = CommandSpec(
        name: "ps", abstract: "List containers (running ones; -a: all)",
        options: [
            OptionSpec("all", short: "a", help: "Show all containers, not only running ones"),
            OptionSpec("quiet", short: "q", help: "Only print ids"),
            OptionSpec("no-trunc", help: "Do not shorten ids and commands"),
            OptionSpec("format", value: "TEMPLATE", help: "Go-style template: {{.ID}} {{.Names}} {{.Image}} {{.Command}} {{.Status}} {{.State}} {{.CreatedAt}} {{.RunningFor}} {{.Ports}} {{.Labels}}, {{json .}}; \"table ...\" adds a header; json: one object per line"),
            OptionSpec("filter", value: "KEY=VALUE", help: "Only matching containers: id, name, status (created, running, paused, restarting, exited), label (KEY or KEY=VALUE), ancestor (image), health (starting, healthy, unhealthy, none), exited (code)", repeatable: true),
        ])

    static let fields = ["ID", "Names", "Image", "Command", "CreatedAt", "RunningFor", "Status", "State", "Ports", "Labels"]
    static let headers = [
        "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "Status": "STATUS",
        "State": "STATE", "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "Labels": "LABELS",
    ]

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        containers.collectGarbage()
        let full = arguments.flag("no-trunc")
        let filters = try ListingFilters(arguments.values("filter"), known: ["id", "name", "status", "label", "ancestor", "health", "exited"])
        // A status filter may ask for stopped containers: it implies -a, as docker's does.
        let all = arguments.flag("all") || arguments.values("filter").contains { $0.hasPrefix("status=") || $0.hasPrefix("exited=") }
        var rows: [[String: String]] = []
        for record in containers.store.all() {
            let state = containers.store.state(record.id)
            if !all && !state.status.isActive { continue }
            let health = record.spec.healthCheck == nil ? nil : containers.store.health(record.id) ?? HealthState()
            guard filters.allows("id", { record.id.hasPrefix($0) }), filters.allows("name", { record.name.contains($0) }),
                filters.allows("status", { $0 == state.status.rawValue }), filters.allowsLabels(record.spec.labels),
                filters.allows("ancestor", { $0 == record.spec.image || baseName(of: record.spec.image) == $0 || record.imageID?.hasPrefix($0.replacingAll("sha256:", with: "")) == true }),
                filters.allows("health", { $0 == (health?.status.rawValue ?? "none") }),
                filters.allows("exited", { state.status == .exited && Int32($0) == state.exitCode })
            else { continue }
            let command = record.spec.effectiveCommand.joined(separator: " ")
            rows.append([
                "ID": full ? record.id : String(record.id.prefix(12)),
                "Names": record.name,
                "Image": baseName(of: record.spec.image),
                "Command": "\"" + (full || command.count <= 20 ? command : String(command.prefix(19)) + "…") + "\"",
                "Status": status(state, health: health),
                "State": state.status.rawValue,
                "CreatedAt": record.created.rfc3339,
                "RunningFor": record.created.humanDistance() + " ago",
                "Ports": state.ports.joined(separator: ", "),
                "Labels": record.spec.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
            ])
        }
        if arguments.flag("quiet") {
            for row in rows { print(row["ID"]!) }
            return 0
        }
        let listing = Listing(fields: fields, headers: headers, rows: rows)
        print(listing.render(format: arguments.value("format"), default: "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"), terminator: "")
        return 0
    }

    /// docker's STATUS column: "Up 5 seconds (healthy)", "Restarting (1) 2 seconds ago".
    static func status(_ state: ContainerState, health: HealthState?) -> String {
        let exit = state.exitCode.map(String.init) ?? "unknown"
        let finished = state.finishedAt.map { $0.humanDistance() + " ago" } ?? ""
        switch state.status {
        case .created: return "Created"
        case .running:
            let up = "Up " + (state.startedAt?.humanDistance() ?? "")
            guard let health else { return up }
            return up + (health.status == .starting ? " (health: starting)" : " (\(health.status.rawValue))")
        case .paused: return "Up " + (state.startedAt?.humanDistance() ?? "") + " (Paused)"
        case .exited: return "Exited (\(exit)) " + finished
        case .restarting: return "Restarting (\(exit)) " + finished
        case .removing: return "Removal In Progress"
        }
    }

    /// Columns separated by tabs, padded to their widest cell (like a tabwriter).
    /// A table, each cell made safe for the terminal (an image's tag or a
    /// path may hold anything) and padded to its column.
    static func align(_ rows: [[String]]) -> String {
        let lines = rows.map { $0.map { printable($0, limit: 200) } }
        var widths: [Int] = []
        for line in lines {
            for (i, cell) in line.enumerated() {
                if i >= widths.count { widths.append(0) }
                widths[i] = max(widths[i], cell.count)
            }
        }
        var out = ""
        for line in lines {
            for (i, cell) in line.enumerated() {
                out += cell
                if i < line.count - 1 { out += String(repeating: " ", count: widths[i] - cell.count + 3) }
            }
            out += "\n"
        }
        return out
    }
}

enum InspectCommand: Command {
    static let spec = CommandSpec(
        name: "inspect", abstract: "Show containers' configuration and state as JSON",
        options: [OptionSpec("format", short: "f", value: "TEMPLATE", help: "Print only {{.Path.To.Field}} of each")],
        arguments: containerArguments)

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        var results: [JSON] = []
        let status = forEachContainer(arguments, containers) { record in results.append(containers.inspect(record)) }
        if let format = arguments.value("format") {
            for result in results { print(fill(format, result)) }
        } else {
            print(JSON.array(results).pretty())
        }
        return status
    }

    /// {{.State.Status}}-style paths into the JSON.
    static func fill(_ template: String, _ json: JSON) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
            out += rest[..<open.lowerBound]
            var value: JSON? = json
            for key in rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: " .").split(separator: ".") {
                value = value?[String(key)]
            }
            switch value {
            case .string(let s)?: out += s
            case .number(let n)?: out += n
            case .bool(let b)?: out += b ? "true" : "false"
            case .null?, nil: out += "<no value>"
            case let other?: out += other.serialized()
            }
            rest = rest[close.upperBound...]
        }
        return out + rest
    }
}

enum LogsCommand: Command {
    static let spec = CommandSpec(
        name: "logs", abstract: "Print a container's output (kept in container.log)",
        options: [
            OptionSpec("follow", short: "f", help: "Keep printing new output until the container stops"),
            OptionSpec("tail", short: "n", value: "N", help: "Only the last N lines"),
            OptionSpec("since", value: "TIME", help: "Only lines since TIME (RFC 3339, a Unix time, or a duration such as 10m)"),
            OptionSpec("timestamps", short: "t", help: "Prefix each line with its time"),
        ],
        arguments: [ArgumentSpec("CONTAINER", help: "A name, an id or a unique prefix of one")])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let record = try containers.store.resolve(arguments.positionals[0])
        let tail = try arguments.int("tail")
        var since: Timestamp?
        if let text = arguments.value("since") {
            guard let parsed = Timestamp(since: text) else { throw UrunError.usage("--since \(text): not a time") }
            since = parsed
        }
        let timestamps = arguments.flag("timestamps")
        let path = containers.store.logFile(record.id)
        var offset = 0
        var pending: [UInt8] = []
        func emit(_ entries: [ContainerLog.Entry]) {
            for entry in entries where since.map({ entry.time >= $0 }) ?? true {
                let text = timestamps ? entry.time.rfc3339 + " " + entry.text : entry.text
                writeQuietly(entry.stream == "stderr" ? 2 : 1, text)
            }
        }
        /// The complete lines written since the last call, handed to `body` a
        /// megabyte at a time: a log may be far larger than memory should hold.
        func readNew(_ body: ([ContainerLog.Entry]) -> Void) {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return }
            defer { closeQuietly(fd) }
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
                guard n > 0 else { return }
                offset += n
                pending += chunk[0..<n]
                guard let end = pending.lastIndex(of: UInt8(ascii: "\n")) else { continue }
                body(ContainerLog.entries(Substring(String(decoding: pending[...end], as: UTF8.self))))
                pending.removeSubrange(...end)
            }
        }
        if let tail, tail >= 0 {
            var last: [ContainerLog.Entry] = []
            readNew { entries in
                last += entries
                if last.count > tail { last.removeFirst(last.count - tail) }
            }
            emit(last)
        } else {
            readNew(emit)
        }
        guard arguments.flag("follow") else { return 0 }
        while true {
            let supervised = containers.store.isSupervised(record.id)
            readNew(emit)
            if !supervised { return 0 }
            usleep(50_000)
        }
    }
}

enum StatsCommand: Command {
    static let spec = CommandSpec(
        name: "stats", abstract: "Show running containers' CPU, memory, processes and IO (from their cgroups)",
        options: [OptionSpec("no-stream", help: "Print one sample and exit")],
        arguments: [ArgumentSpec("CONTAINER", help: "Containers to show (default: all running)", optional: true, variadic: true)])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let chosen = arguments.positionals.isEmpty
            ? containers.store.all() : try arguments.positionals.map { try containers.store.resolve($0) }
        while true {
            let first = sample(chosen, containers)
            usleep(500_000)
            let second = sample(chosen, containers)
            var lines = [["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "PIDS", "BLOCK I/O"]]
            for record in chosen {
                guard let after = second[record.id] else { continue }
                let before = first[record.id]
                var cpu = "--"
                if let a = before?.cpuMicroseconds, let b = after.cpuMicroseconds {
                    cpu = percent(Double(b - min(a, b)) / 500_000)
                }
                let memory = (after.memoryBytes.map { humanSize($0, binary: true) } ?? "--") + " / "
                    + (after.memoryLimit.map { humanSize($0, binary: true) } ?? "--")
                let io = (after.ioReadBytes.map { humanSize($0) } ?? "--") + " / " + (after.ioWrittenBytes.map { humanSize($0) } ?? "--")
                lines.append([String(record.id.prefix(12)), record.name, cpu, memory, after.processes.map(String.init) ?? "--", io])
            }
            if !arguments.flag("no-stream") { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            print(PsCommand.align(lines), terminator: "")
            if arguments.flag("no-stream") { return 0 }
            fflush(nil)
        }
    }

    static func sample(_ records: [ContainerRecord], _ containers: Containers) -> [String: CgroupStatistics] {
        var samples: [String: CgroupStatistics] = [:]
        for record in records {
            let state = containers.store.state(record.id)
            guard state.status.isUp, let path = state.cgroup else { continue }
            samples[record.id] = Cgroup(path: path).statistics()
        }
        return samples
    }

    static func percent(_ fraction: Double) -> String {
        let hundredths = Int((fraction * 10000).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)%"
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        components(separatedBy: target).joined(separator: replacement)
    }

    func components(separatedBy separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.range(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}

extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        guard !target.isEmpty, count >= target.count else { return nil }
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(target) { return index..<self.index(index, offsetBy: target.count) }
            index = self.index(after: index)
        }
        return nil
    }

    func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}
