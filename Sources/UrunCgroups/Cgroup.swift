import Glibc
import UrunKernel

/// One cgroup of the unified (v2) hierarchy, by its path in the cgroup2 file
/// system. Every operation is a read or write of one of its files
/// (cgroups(7), Documentation/admin-guide/cgroup-v2.rst).
public struct Cgroup: Equatable, Sendable, CustomStringConvertible {
    /// Absolute path, e.g. /sys/fs/cgroup/user.slice/.../urun-<id>.
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public var description: String { path }
    public var name: String { baseName(of: path) }
    public var parent: Cgroup { Cgroup(path: parentDirectory(of: path)) }
    public func child(_ name: String) -> Cgroup { Cgroup(path: path + "/" + name) }

    // MARK: files

    public func read(_ file: String) throws(UrunError) -> String {
        try readText(path + "/" + file)
    }

    /// Writes one value to one cgroup file (the kernel wants a single write).
    public func write(_ file: String, _ value: String, step: Step) throws(UrunError) {
        let target = path + "/" + file
        let fd = try sys(step, explain: "write \(target) \"\(value)\"", path: target) {
            open(target, O_WRONLY | O_CLOEXEC)
        }
        defer { closeQuietly(fd) }
        try writeAll(fd, value, step: step, path: target)
    }

    /// Controllers this cgroup may hand to its children (cgroup.controllers).
    public func controllers() throws(UrunError) -> Set<String> {
        Set(try read("cgroup.controllers").split(whereSeparator: \.isWhitespace).map(String.init))
    }

    /// Controllers enabled for its children (cgroup.subtree_control).
    public func subtreeControl() throws(UrunError) -> Set<String> {
        Set(try read("cgroup.subtree_control").split(whereSeparator: \.isWhitespace).map(String.init))
    }

    public func processes() throws(UrunError) -> [pid_t] {
        try read("cgroup.procs").split(separator: "\n").compactMap { pid_t($0) }
    }

    /// "key value" lines of a flat-keyed file (cgroup.events, memory.events, cpu.stat).
    public func keyed(_ file: String) throws(UrunError) -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        for line in try read(file).split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, let value = UInt64(fields[1]) { values[String(fields[0])] = value }
        }
        return values
    }

    // MARK: life

    public func create() throws(UrunError) {
        try sys(.createCgroup, explain: "mkdir \(path)", path: path) { mkdir(path, 0o755) }
    }

    /// Removes the cgroup once its last process is gone. A cgroup stays
    /// populated for a moment after its processes are reaped, hence the retries.
    /// Removes the (empty) cgroup. Processes that are still dying (the
    /// kernel kills a PID namespace's last ones after its PID 1) are killed
    /// through cgroup.kill and waited for, up to two seconds.
    public func remove() throws(UrunError) {
        for attempt in 0..<2000 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            guard errno == EBUSY, attempt < 1999 else { break }
            if attempt == 0 { try? write("cgroup.kill", "1", step: .killCgroup) }
            usleep(1000)
        }
        throw .kernel(.removeCgroup, path: path, .current)
    }

    public func add(pid: pid_t) throws(UrunError) {
        try write("cgroup.procs", "\(pid)", step: .moveToCgroup)
    }

    public var isPopulated: Bool { (try? keyed("cgroup.events"))?["populated"] == 1 }

    // MARK: freezer and kill (cgroup v2 core files, no controller needed)

    /// Freezes every process of the cgroup and waits until the kernel says so.
    public func freeze() throws(UrunError) {
        try write("cgroup.freeze", "1", step: .freezeCgroup)
        try waitForEvent("frozen", 1)
    }

    public func thaw() throws(UrunError) {
        try write("cgroup.freeze", "0", step: .freezeCgroup)
        try waitForEvent("frozen", 0)
    }

    public var isFrozen: Bool { (try? keyed("cgroup.events"))?["frozen"] == 1 }

    /// SIGKILLs every process of the cgroup at once (cgroup.kill, Linux 5.14).
    public func kill() throws(UrunError) {
        try write("cgroup.kill", "1", step: .killCgroup)
    }

    private func waitForEvent(_ key: String, _ value: UInt64) throws(UrunError) {
        for _ in 0..<2000 {
            if (try keyed("cgroup.events"))[key] == value { return }
            usleep(500)
        }
        throw .invalid("\(path): the kernel did not report \(key) \(value) within a second")
    }

    // MARK: statistics

    /// How many times the OOM killer ended a process of this cgroup.
    public var oomKills: UInt64 { (try? keyed("memory.events"))?["oom_kill"] ?? 0 }

    public func statistics() -> CgroupStatistics {
        var stats = CgroupStatistics()
        stats.memoryBytes = (try? read("memory.current")).flatMap { UInt64($0.trimmingWhitespace()) }
        stats.memoryLimit = (try? read("memory.max")).flatMap { UInt64($0.trimmingWhitespace()) }
        stats.cpuMicroseconds = (try? keyed("cpu.stat"))?["usage_usec"]
        stats.processes = (try? read("pids.current")).flatMap { UInt64($0.trimmingWhitespace()) }
        if let io = try? read("io.stat") {
            var read: UInt64 = 0
            var written: UInt64 = 0
            for field in io.split(whereSeparator: \.isWhitespace) {
                if let value = field.split(separator: "=").last.flatMap({ UInt64($0) }) {
                    if field.hasPrefix("rbytes=") { read += value }
                    if field.hasPrefix("wbytes=") { written += value }
                }
            }
            stats.ioReadBytes = read
            stats.ioWrittenBytes = written
        }
        return stats
    }
}

/// What `urun stats` shows; nil where the controller is not enabled.
public struct CgroupStatistics: Equatable, Sendable {
    public var memoryBytes: UInt64?
    public var memoryLimit: UInt64?
    public var cpuMicroseconds: UInt64?
    public var processes: UInt64?
    public var ioReadBytes: UInt64?
    public var ioWrittenBytes: UInt64?

    public init() {}
}
