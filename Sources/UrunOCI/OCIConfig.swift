import UrunKernel

/// A bundle's config.json (the OCI runtime specification, 1.0 to 1.2), as
/// typed values: what an engine (podman, containerd) asks a runtime to run.
/// Parsing checks every field it reads — types, ranges, names — so a config
/// that parses is one the launch can rely on; fields urun does not read are
/// ignored, as the specification allows.
public struct OCIConfig: Equatable, Sendable {
    public var ociVersion: String
    public var process: OCIProcess?
    public var root: Root
    public var hostname: String?
    public var domainname: String?
    public var mounts: [OCIMount] = []
    public var hooks = Hooks()
    public var linux = Linux()
    public var annotations: [String: String] = [:]

    public struct Root: Equatable, Sendable {
        /// Relative to the bundle, or absolute.
        public var path: String
        public var readonly = false
    }

    public struct Hook: Equatable, Sendable {
        public var path: String
        public var args: [String] = []
        public var env: [String] = []
        /// Seconds; nil: no limit.
        public var timeout: Int?

        public init(path: String, args: [String], env: [String], timeout: Int?) {
            self.path = path
            self.args = args
            self.env = env
            self.timeout = timeout
        }
    }

    /// The hooks, by when they run (config.md, "POSIX-platform Hooks").
    public struct Hooks: Equatable, Sendable {
        public var prestart: [Hook] = []
        public var createRuntime: [Hook] = []
        public var createContainer: [Hook] = []
        public var startContainer: [Hook] = []
        public var poststart: [Hook] = []
        public var poststop: [Hook] = []
    }

    public struct Namespace: Equatable, Sendable {
        /// pid, network, mount, ipc, uts, user, cgroup, time.
        public var type: String
        /// Join this namespace (a /proc/PID/ns/... path) instead of making one.
        public var path: String?

        public init(type: String, path: String?) {
            self.type = type
            self.path = path
        }
    }

    public struct IDMapping: Equatable, Sendable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32
    }

    public struct Device: Equatable, Sendable {
        /// c, b, u or p.
        public var type: String
        public var path: String
        public var major: Int64
        public var minor: Int64
        public var fileMode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?
    }

    public struct Linux: Equatable, Sendable {
        public var namespaces: [Namespace] = []
        public var uidMappings: [IDMapping] = []
        public var gidMappings: [IDMapping] = []
        public var devices: [Device] = []
        public var cgroupsPath: String?
        public var resources: OCIResources?
        public var sysctl: [String: String] = [:]
        /// The seccomp section, kept as JSON: its format is docker's profile format.
        public var seccomp: JSON?
        public var maskedPaths: [String] = []
        public var readonlyPaths: [String] = []
        public var rootfsPropagation: String?
        public var personality: String?
        public var mountLabel: String?
        public var timeOffsets: [String: (secs: Int64, nanosecs: UInt32)] = [:]

        public static func == (a: Linux, b: Linux) -> Bool {
            a.namespaces == b.namespaces && a.uidMappings == b.uidMappings && a.gidMappings == b.gidMappings
                && a.devices == b.devices && a.cgroupsPath == b.cgroupsPath && a.resources == b.resources
                && a.sysctl == b.sysctl && a.seccomp == b.seccomp && a.maskedPaths == b.maskedPaths
                && a.readonlyPaths == b.readonlyPaths && a.rootfsPropagation == b.rootfsPropagation
                && a.personality == b.personality && a.mountLabel == b.mountLabel
                && a.timeOffsets.mapValues { "\($0.secs).\($0.nanosecs)" } == b.timeOffsets.mapValues { "\($0.secs).\($0.nanosecs)" }
        }

        /// The namespace of `type` the config asks for, if any.
        public func namespace(_ type: String) -> Namespace? { namespaces.first { $0.type == type } }
    }

    public init(ociVersion: String, root: Root) {
        self.ociVersion = ociVersion
        self.root = root
    }

    /// Parses config.json's text; `source` names it in errors.
    public init(json text: [UInt8], source: String) throws(UrunError) {
        var fields = try OCIFields(parsing: text, source: source)
        try self.init(fields: &fields)
    }

    init(fields f: inout OCIFields) throws(UrunError) {
        guard f.json.members != nil else { throw f.bad("", "expected a JSON object") }
        ociVersion = try f.string("ociVersion")
        let parts = ociVersion.split(separator: ".", maxSplits: 1)
        guard parts.first == "1" else {
            throw f.bad("ociVersion", "\(printable(ociVersion, limit: 40)) is not a 1.x runtime specification (urun runs 1.0 to 1.2)")
        }
        let rootJSON = try f.object("root")
        var rootFields = f.nested(rootJSON, "root")
        root = Root(path: try rootFields.string("path"), readonly: try rootFields.optionalBool("readonly") ?? false)
        if let processJSON = f.json["process"] {
            var processFields = f.nested(processJSON, "process")
            process = try OCIProcess(fields: &processFields)
        }
        hostname = try f.optionalString("hostname")
        domainname = try f.optionalString("domainname")
        for (i, mount) in (try f.optionalArray("mounts") ?? []).enumerated() {
            var m = f.nested(mount, "mounts[\(i)]")
            mounts.append(try OCIMount(fields: &m))
        }
        if let hooksJSON = f.json["hooks"] {
            var h = f.nested(hooksJSON, "hooks")
            func list(_ name: String) throws(UrunError) -> [Hook] {
                var result: [Hook] = []
                for (i, hook) in (try h.optionalArray(name) ?? []).enumerated() {
                    var one = h.nested(hook, "\(name)[\(i)]")
                    let timeout = try one.optionalInteger("timeout", Int.self)
                    if let timeout, timeout <= 0 { throw one.bad("timeout", "must be greater than zero") }
                    result.append(
                        Hook(path: try one.string("path"), args: try one.optionalStrings("args") ?? [],
                             env: try one.optionalStrings("env") ?? [], timeout: timeout))
                }
                return result
            }
            hooks = Hooks(
                prestart: try list("prestart"), createRuntime: try list("createRuntime"),
                createContainer: try list("createContainer"), startContainer: try list("startContainer"),
                poststart: try list("poststart"), poststop: try list("poststop"))
        }
        if let linuxJSON = f.json["linux"] {
            var l = f.nested(linuxJSON, "linux")
            linux = try Self.linux(&l)
        }
        for (key, value) in try f.optionalObject("annotations")?.members ?? [] {
            guard let text = value.string else { throw f.bad("annotations.\(key)", "expected a string") }
            annotations[key] = text
        }
    }

    static let namespaceTypes = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]

    private static func linux(_ l: inout OCIFields) throws(UrunError) -> Linux {
        var linux = Linux()
        for (i, item) in (try l.optionalArray("namespaces") ?? []).enumerated() {
            var n = l.nested(item, "namespaces[\(i)]")
            let type = try n.string("type")
            guard namespaceTypes.contains(type) else { throw n.bad("type", "unknown namespace \"\(printable(type, limit: 40))\"") }
            guard !linux.namespaces.contains(where: { $0.type == type }) else { throw n.bad("type", "\(type) is listed twice") }
            linux.namespaces.append(Namespace(type: type, path: try n.optionalString("path")))
        }
        func mappings(_ name: String) throws(UrunError) -> [IDMapping] {
            var result: [IDMapping] = []
            for (i, item) in (try l.optionalArray(name) ?? []).enumerated() {
                var m = l.nested(item, "\(name)[\(i)]")
                let mapping = IDMapping(
                    containerID: try m.integer("containerID", UInt32.self), hostID: try m.integer("hostID", UInt32.self),
                    size: try m.integer("size", UInt32.self))
                guard mapping.size > 0, !mapping.containerID.addingReportingOverflow(mapping.size).overflow,
                    !mapping.hostID.addingReportingOverflow(mapping.size).overflow
                else { throw m.bad("size", "the range passes 2^32 or is empty") }
                result.append(mapping)
            }
            return result
        }
        linux.uidMappings = try mappings("uidMappings")
        linux.gidMappings = try mappings("gidMappings")
        for (i, item) in (try l.optionalArray("devices") ?? []).enumerated() {
            var d = l.nested(item, "devices[\(i)]")
            let type = try d.string("type")
            guard ["c", "b", "u", "p"].contains(type) else { throw d.bad("type", "expected c, b, u or p") }
            let path = try d.string("path")
            guard path.hasPrefix("/") else { throw d.bad("path", "must be absolute") }
            let fileMode = try d.optionalInteger("fileMode", UInt32.self)
            if let fileMode, fileMode > 0o7777 { throw d.bad("fileMode", "expected a permission mode up to 07777") }
            linux.devices.append(
                Device(
                    type: type, path: path, major: type == "p" ? 0 : try d.integer("major", Int64.self),
                    minor: type == "p" ? 0 : try d.integer("minor", Int64.self), fileMode: fileMode,
                    uid: try d.optionalInteger("uid", UInt32.self), gid: try d.optionalInteger("gid", UInt32.self)))
        }
        linux.cgroupsPath = try l.optionalString("cgroupsPath")
        if let resources = l.json["resources"] {
            var r = l.nested(resources, "resources")
            linux.resources = try OCIResources(fields: &r)
        }
        for (key, value) in try l.optionalObject("sysctl")?.members ?? [] {
            guard let text = value.string else { throw l.bad("sysctl.\(key)", "expected a string") }
            linux.sysctl[key] = text
        }
        linux.seccomp = l.json["seccomp"].flatMap { $0.isNull ? nil : $0 }
        linux.maskedPaths = try l.optionalStrings("maskedPaths") ?? []
        linux.readonlyPaths = try l.optionalStrings("readonlyPaths") ?? []
        linux.rootfsPropagation = try l.optionalString("rootfsPropagation")
        if let propagation = linux.rootfsPropagation, OCIMount.propagation[propagation] == nil {
            throw l.bad("rootfsPropagation", "unknown propagation \"\(printable(propagation, limit: 40))\"")
        }
        if let personality = l.json["personality"] {
            var p = l.nested(personality, "personality")
            let domain = try p.string("domain")
            guard domain == "LINUX" || domain == "LINUX32" else { throw p.bad("domain", "expected LINUX or LINUX32") }
            linux.personality = domain
        }
        linux.mountLabel = try l.optionalString("mountLabel")
        for (clock, value) in try l.optionalObject("timeOffsets")?.members ?? [] {
            guard clock == "monotonic" || clock == "boottime" else { throw l.bad("timeOffsets.\(clock)", "expected monotonic or boottime") }
            var t = l.nested(value, "timeOffsets.\(clock)")
            let nanos = try t.optionalInteger("nanosecs", UInt32.self) ?? 0
            guard nanos < 1_000_000_000 else { throw t.bad("nanosecs", "expected less than 10^9") }
            linux.timeOffsets[clock] = (try t.optionalInteger("secs", Int64.self) ?? 0, nanos)
        }
        return linux
    }
}

/// process: what runs, as whom, with what.
public struct OCIProcess: Equatable, Sendable {
    public var terminal = false
    public var consoleSize: (height: UInt16, width: UInt16)?
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var umask: UInt32?
    public var additionalGids: [UInt32] = []
    public var args: [String]
    public var env: [String] = []
    public var cwd: String
    public var capabilities = Capabilities()
    public var rlimits: [Rlimit] = []
    public var noNewPrivileges = false
    public var oomScoreAdj: Int?
    public var apparmorProfile: String?
    public var selinuxLabel: String?

    /// The five sets, as names ("CAP_CHOWN"); nil where the config omits the set.
    public struct Capabilities: Equatable, Sendable {
        public var bounding: [String]?
        public var effective: [String]?
        public var inheritable: [String]?
        public var permitted: [String]?
        public var ambient: [String]?
    }

    public struct Rlimit: Equatable, Sendable {
        /// RLIMIT_NOFILE, ...
        public var type: String
        public var soft: UInt64
        public var hard: UInt64
    }

    public static func == (a: OCIProcess, b: OCIProcess) -> Bool {
        a.terminal == b.terminal && a.consoleSize?.height == b.consoleSize?.height && a.consoleSize?.width == b.consoleSize?.width
            && a.uid == b.uid && a.gid == b.gid && a.umask == b.umask && a.additionalGids == b.additionalGids
            && a.args == b.args && a.env == b.env && a.cwd == b.cwd && a.capabilities == b.capabilities
            && a.rlimits == b.rlimits && a.noNewPrivileges == b.noNewPrivileges && a.oomScoreAdj == b.oomScoreAdj
            && a.apparmorProfile == b.apparmorProfile && a.selinuxLabel == b.selinuxLabel
    }

    public init(args: [String], cwd: String) {
        self.args = args
        self.cwd = cwd
    }

    /// A process.json (`exec --process`) or config.json's process.
    public init(json text: [UInt8], source: String) throws(UrunError) {
        var fields = try OCIFields(parsing: text, source: source)
        try self.init(fields: &fields)
    }

    /// In the kernel's order: a name's index is its RLIMIT_* number.
    public static let rlimitNames = [
        "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC",
        "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
    ]

    init(fields p: inout OCIFields) throws(UrunError) {
        guard p.json.members != nil else { throw p.bad("", "expected a JSON object") }
        args = try p.optionalStrings("args") ?? []
        guard !args.isEmpty else { throw p.bad("args", "missing: a process needs at least its program") }
        cwd = try p.string("cwd")
        guard cwd.hasPrefix("/") else { throw p.bad("cwd", "must be an absolute path") }
        terminal = try p.optionalBool("terminal") ?? false
        if let size = p.json["consoleSize"] {
            var s = p.nested(size, "consoleSize")
            consoleSize = (try s.integer("height", UInt16.self), try s.integer("width", UInt16.self))
        }
        if let user = p.json["user"] {
            var u = p.nested(user, "user")
            uid = try u.integer("uid", UInt32.self)
            gid = try u.integer("gid", UInt32.self)
            umask = try u.optionalInteger("umask", UInt32.self)
            if let umask, umask > 0o777 { throw u.bad("umask", "expected a mode up to 0777") }
            for (i, gid) in (try u.optionalArray("additionalGids") ?? []).enumerated() {
                guard let value = gid.integer(UInt32.self) else { throw u.bad("additionalGids[\(i)]", "expected a gid from 0 to 2^32-1") }
                additionalGids.append(value)
            }
            if try u.optionalString("username") != nil { throw u.bad("username", "is for Windows containers") }
        }
        env = try p.optionalStrings("env") ?? []
        for (i, entry) in env.enumerated() where !entry.contains("=") {
            throw p.bad("env[\(i)]", "expected NAME=VALUE, got \"\(printable(entry, limit: 60))\"")
        }
        if let caps = p.json["capabilities"] {
            var c = p.nested(caps, "capabilities")
            capabilities = Capabilities(
                bounding: try c.optionalStrings("bounding"), effective: try c.optionalStrings("effective"),
                inheritable: try c.optionalStrings("inheritable"), permitted: try c.optionalStrings("permitted"),
                ambient: try c.optionalStrings("ambient"))
        }
        for (i, item) in (try p.optionalArray("rlimits") ?? []).enumerated() {
            var r = p.nested(item, "rlimits[\(i)]")
            let type = try r.string("type")
            guard Self.rlimitNames.contains(type) else { throw r.bad("type", "unknown rlimit \"\(printable(type, limit: 40))\"") }
            let limit = Rlimit(type: type, soft: try r.integer("soft", UInt64.self), hard: try r.integer("hard", UInt64.self))
            guard limit.soft <= limit.hard else { throw r.bad("soft", "is above hard") }
            rlimits.append(limit)
        }
        noNewPrivileges = try p.optionalBool("noNewPrivileges") ?? false
        oomScoreAdj = try p.optionalInteger("oomScoreAdj", Int.self)
        if let adj = oomScoreAdj, !(-1000...1000).contains(adj) { throw p.bad("oomScoreAdj", "expected -1000 to 1000") }
        apparmorProfile = try p.optionalString("apparmorProfile")
        selinuxLabel = try p.optionalString("selinuxLabel")
    }
}

/// One entry of `mounts`.
public struct OCIMount: Equatable, Sendable {
    public var destination: String
    public var type: String?
    public var source: String?
    public var options: [String] = []

    init(fields m: inout OCIFields) throws(UrunError) {
        destination = try m.string("destination")
        guard destination.hasPrefix("/") else { throw m.bad("destination", "must be an absolute path") }
        type = try m.optionalString("type")
        source = try m.optionalString("source")
        options = try m.optionalStrings("options") ?? []
    }

    public init(destination: String, type: String?, source: String?, options: [String]) {
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
    }

    /// Whether this is a bind mount (type "bind", or a bind/rbind option).
    public var isBind: Bool { type == "bind" || options.contains("bind") || options.contains("rbind") }

    /// mount(8)'s propagation options → their MS_* flags.
    public static let propagation: [String: UInt] = [
        "private": 1 << 18, "rprivate": 1 << 18 | 16384, "shared": 1 << 20, "rshared": 1 << 20 | 16384,
        "slave": 1 << 19, "rslave": 1 << 19 | 16384, "unbindable": 1 << 17, "runbindable": 1 << 17 | 16384,
    ]
}

/// Reading one JSON object's fields, each error naming the file and the
/// field's path ("config.json: process.user.uid: expected ...").
struct OCIFields {
    let json: JSON
    let source: String
    let path: String

    init(_ json: JSON, source: String, path: String = "") {
        self.json = json
        self.source = source
        self.path = path
    }

    /// A document's text, parsed; `source` names it in errors.
    init(parsing text: [UInt8], source: String) throws(UrunError) {
        do {
            self.init(try JSON(parsing: text), source: source)
        } catch {
            throw .invalid("\(source): not valid JSON: \(error)")
        }
    }

    func nested(_ json: JSON, _ name: String) -> OCIFields {
        OCIFields(json, source: source, path: path.isEmpty ? name : path + "." + name)
    }

    func bad(_ field: String, _ reason: String) -> UrunError {
        let where_ = [path, field].filter { !$0.isEmpty }.joined(separator: ".")
        return .invalid("\(source): \(where_.isEmpty ? "" : where_ + ": ")\(reason)")
    }

    func string(_ name: String) throws(UrunError) -> String {
        guard let value = try optionalString(name) else { throw bad(name, "missing") }
        return value
    }

    func optionalString(_ name: String) throws(UrunError) -> String? {
        guard let value = json[name], !value.isNull else { return nil }
        guard let text = value.string else { throw bad(name, "expected a string") }
        return text
    }

    func optionalBool(_ name: String) throws(UrunError) -> Bool? {
        guard let value = json[name], !value.isNull else { return nil }
        guard let flag = value.bool else { throw bad(name, "expected true or false") }
        return flag
    }

    func integer<T: FixedWidthInteger>(_ name: String, _ type: T.Type) throws(UrunError) -> T {
        guard let value = try optionalInteger(name, type) else { throw bad(name, "missing") }
        return value
    }

    /// A whole number that fits `T`, never truncated.
    func optionalInteger<T: FixedWidthInteger>(_ name: String, _ type: T.Type) throws(UrunError) -> T? {
        guard let value = json[name], !value.isNull else { return nil }
        guard let number = value.integer(T.self) else { throw bad(name, "expected a whole number from \(T.min) to \(T.max)") }
        return number
    }

    func optionalArray(_ name: String) throws(UrunError) -> [JSON]? {
        guard let value = json[name], !value.isNull else { return nil }
        guard let array = value.array else { throw bad(name, "expected a list") }
        return array
    }

    func optionalStrings(_ name: String) throws(UrunError) -> [String]? {
        guard let value = json[name], !value.isNull else { return nil }
        guard let strings = value.strings else { throw bad(name, "expected a list of strings") }
        return strings
    }

    func object(_ name: String) throws(UrunError) -> JSON {
        guard let value = try optionalObject(name) else { throw bad(name, "missing") }
        return value
    }

    func optionalObject(_ name: String) throws(UrunError) -> JSON? {
        guard let value = json[name], !value.isNull else { return nil }
        guard value.members != nil else { throw bad(name, "expected an object") }
        return value
    }
}
