import UrunKernel

/// linux.resources, translated to the cgroup v2 files that enforce them, as
/// runc and crun translate them (their v1-shaped numbers included). Device
/// rules are not translated: cgroup v2 has no devices file (runc attaches
/// eBPF, which an unprivileged user cannot). A container's devices are those
/// bound in or made for it, and where the rules deny devices at large the
/// plan withholds CAP_MKNOD (`devicesRestricted`), so it makes no others.
public struct OCIResources: Equatable, Sendable {
    /// One value for one file of the container's cgroup.
    public struct Setting: Equatable, Sendable {
        public var controller: String
        public var file: String
        public var value: String
        /// The config field it comes from, for messages ("memory.limit").
        public var field: String
    }

    public var settings: [Setting] = []
    /// The device rules, applied in order as the device cgroup would, leave
    /// reading or writing devices at large (type "a" or none, any major and
    /// minor) denied: docker's, podman's and containerd's defaults.
    public var devicesRestricted = false

    public init() {}

    /// `update --resources FILE`: a linux.resources object on its own.
    public init(json text: [UInt8], source: String) throws(UrunError) {
        var fields = try OCIFields(parsing: text, source: source)
        guard fields.json.members != nil else { throw fields.bad("", "expected a JSON object") }
        try self.init(fields: &fields)
    }

    init(fields r: inout OCIFields) throws(UrunError) {
        func add(_ field: String, _ controller: String, _ file: String, _ value: String) {
            settings.removeAll { $0.file == file }
            settings.append(Setting(controller: controller, file: file, value: value, field: field))
        }
        if let memory = r.json["memory"] {
            var m = r.nested(memory, "memory")
            let limit = try m.optionalInteger("limit", Int64.self)
            if let limit {
                guard limit == -1 || limit > 0 else { throw m.bad("limit", "expected -1 (none) or a number of bytes") }
                add("memory.limit", "memory", "memory.max", limit == -1 ? "max" : String(limit))
            }
            if let reservation = try m.optionalInteger("reservation", Int64.self) {
                guard reservation >= -1 else { throw m.bad("reservation", "expected -1 (none) or a number of bytes") }
                add("memory.reservation", "memory", "memory.low", reservation == -1 ? "max" : String(reservation))
            }
            if let swap = try m.optionalInteger("swap", Int64.self) {
                // v1's swap is memory plus swap; v2's memory.swap.max is swap alone.
                guard swap >= -1 else { throw m.bad("swap", "expected -1 (none) or a number of bytes") }
                if swap == -1 {
                    add("memory.swap", "memory", "memory.swap.max", "max")
                } else {
                    guard let limit, limit > 0, swap >= limit else {
                        throw m.bad("swap", "is memory plus swap: it needs a memory.limit no larger than it")
                    }
                    add("memory.swap", "memory", "memory.swap.max", String(swap - limit))
                }
            }
        }
        if let cpu = r.json["cpu"] {
            var c = r.nested(cpu, "cpu")
            if let shares = try c.optionalInteger("shares", UInt64.self), shares > 0 {
                let clamped = min(max(shares, 2), 262_144)
                add("cpu.shares", "cpu", "cpu.weight", String(1 + ((clamped - 2) * 9999) / 262_142))
            }
            let quota = try c.optionalInteger("quota", Int64.self)
            let period = try c.optionalInteger("period", UInt64.self)
            if quota != nil || period != nil {
                if let period, !(1000...1_000_000).contains(period) { throw c.bad("period", "expected 1000 to 1000000 microseconds") }
                let limit = quota.map { $0 <= 0 ? "max" : String($0) } ?? "max"
                add("cpu.quota", "cpu", "cpu.max", limit + " " + String(period ?? 100_000))
            }
            if let cpus = try c.optionalString("cpus"), !cpus.isEmpty {
                try Self.checkList(cpus, c, "cpus")
                add("cpu.cpus", "cpuset", "cpuset.cpus", cpus)
            }
            if let mems = try c.optionalString("mems"), !mems.isEmpty {
                try Self.checkList(mems, c, "mems")
                add("cpu.mems", "cpuset", "cpuset.mems", mems)
            }
            if let idle = try c.optionalInteger("idle", Int64.self), idle != 0 { add("cpu.idle", "cpu", "cpu.idle", "1") }
        }
        if let pids = r.json["pids"] {
            var p = r.nested(pids, "pids")
            let limit = try p.integer("limit", Int64.self)
            add("pids.limit", "pids", "pids.max", limit <= 0 ? "max" : String(limit))
        }
        if let blockIO = r.json["blockIO"] {
            var b = r.nested(blockIO, "blockIO")
            if let weight = try b.optionalInteger("weight", UInt16.self), weight > 0 {
                guard (10...1000).contains(weight) else { throw b.bad("weight", "expected 10 to 1000") }
                add("blockIO.weight", "io", "io.weight", "default " + String(1 + (UInt32(weight) - 10) * 9999 / 990))
            }
            for (name, key) in [("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                                ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")] {
                for (i, item) in (try b.optionalArray(name) ?? []).enumerated() {
                    var d = b.nested(item, "\(name)[\(i)]")
                    let device = "\(try d.integer("major", UInt32.self)):\(try d.integer("minor", UInt32.self))"
                    let rate = try d.integer("rate", UInt64.self)
                    settings.append(Setting(controller: "io", file: "io.max", value: "\(device) \(key)=\(rate)", field: "blockIO.\(name)"))
                }
            }
        }
        for (i, item) in (try r.optionalArray("hugepageLimits") ?? []).enumerated() {
            var h = r.nested(item, "hugepageLimits[\(i)]")
            let size = try h.string("pageSize")
            guard size.allSatisfy({ $0.isASCII && ($0.isNumber || $0.isLetter) }) else { throw h.bad("pageSize", "expected a size such as 2MB") }
            add("hugepageLimits", "hugetlb", "hugetlb.\(size).max", String(try h.integer("limit", UInt64.self)))
        }
        for (file, value) in try r.optionalObject("unified")?.members ?? [] {
            // A file of the container's own cgroup, never a path out of it.
            guard let text = value.string, !file.contains("/"), file != "..", file != ".",
                let dot = file.firstIndex(of: "."), dot != file.startIndex, !hasControlCharacters(file + text)
            else { throw r.bad("unified.\(printable(file, limit: 40))", "expected controller.file: \"value\"") }
            add("unified", String(file[..<dot]), file, text)
        }
        for (i, item) in (try r.optionalArray("devices") ?? []).enumerated() {
            var d = r.nested(item, "devices[\(i)]")
            guard let allow = try d.optionalBool("allow") else { throw d.bad("allow", "missing") }
            let type = try d.optionalString("type") ?? "a"
            guard ["a", "c", "b"].contains(type) else { throw d.bad("type", "expected a, c or b") }
            let access = try d.optionalString("access") ?? "rwm"
            guard !access.isEmpty, access.allSatisfy({ "rwm".contains($0) }) else { throw d.bad("access", "expected letters of rwm") }
            let major = try d.optionalInteger("major", Int64.self)
            let minor = try d.optionalInteger("minor", Int64.self)
            guard major.map({ $0 >= -1 }) ?? true, minor.map({ $0 >= -1 }) ?? true else { throw d.bad("major", "expected a device number") }
            // Only a rule over every device changes what devices at large may do.
            let everyDevice = type == "a" && (major ?? -1) == -1 && (minor ?? -1) == -1
            if everyDevice && (access.contains("r") || access.contains("w")) { devicesRestricted = !allow }
        }
    }

    /// "0-3,7": digits, '-' and ',' only, each number below the kernel's bound.
    static func checkList(_ text: String, _ fields: OCIFields, _ name: String) throws(UrunError) {
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), bounds.allSatisfy({ !$0.isEmpty && $0.count <= 5 && $0.allSatisfy(\.isNumber) }),
                let low = Int(bounds[0]), let high = Int(bounds.last!), low <= high, high < 8192
            else { throw fields.bad(name, "expected a list such as 0-3,7") }
        }
    }
}
