import CUrunSecurity
import CUrunSyscalls
import Glibc
import UrunKernel

/// A seccomp profile in docker's model (and JSON format): a default action,
/// then rules that allow (or deny) syscalls by name, some only for
/// containers holding a capability, some only on an architecture.
public struct SeccompProfile: Sendable {
    public enum Action: Equatable, Sendable {
        case allow, errno(UInt32), killProcess, killThread, trap, trace(UInt32), log

        var encoded: UInt32 {
            switch self {
            case .allow: return urun_seccomp_action(CInt(URUN_SECCOMP_ALLOW), 0)
            case .errno(let e): return urun_seccomp_action(CInt(URUN_SECCOMP_ERRNO), e)
            case .killProcess: return urun_seccomp_action(CInt(URUN_SECCOMP_KILL_PROCESS), 0)
            case .killThread: return urun_seccomp_action(CInt(URUN_SECCOMP_KILL_THREAD), 0)
            case .trap: return urun_seccomp_action(CInt(URUN_SECCOMP_TRAP), 0)
            case .trace(let v): return urun_seccomp_action(CInt(URUN_SECCOMP_TRACE), v)
            case .log: return urun_seccomp_action(CInt(URUN_SECCOMP_LOG), 0)
            }
        }
    }

    /// libseccomp's comparison operators, numbered as libseccomp numbers them.
    public enum Operator: Int32, Sendable {
        case notEqual = 1, lessThan, lessOrEqual, equal, greaterOrEqual, greaterThan, maskedEqual
    }

    public struct Argument: Equatable, Sendable {
        public let index: UInt32
        public let op: Operator
        /// For maskedEqual: the mask; `valueTwo` is what the masked value must equal.
        public let value: UInt64
        public let valueTwo: UInt64

        public init(_ index: UInt32, _ op: Operator, _ value: UInt64, _ valueTwo: UInt64 = 0) {
            self.index = index
            self.op = op
            self.value = value
            self.valueTwo = valueTwo
        }
    }

    /// When a rule applies: capabilities the container holds, architectures
    /// (docker's Go names: amd64, x32, x86, arm64, arm), a minimum kernel.
    public struct Condition: Equatable, Sendable {
        public var caps: [String] = []
        public var arches: [String] = []
        public var minKernel: KernelVersion?

        public init(caps: [String] = [], arches: [String] = [], minKernel: KernelVersion? = nil) {
            self.caps = caps
            self.arches = arches
            self.minKernel = minKernel
        }

        var isEmpty: Bool { caps.isEmpty && arches.isEmpty && minKernel == nil }
    }

    public struct Rule: Equatable, Sendable {
        public let names: [String]
        public let action: Action
        public let args: [Argument]
        public let includes: Condition
        public let excludes: Condition

        public init(
            _ names: [String], _ action: Action = .allow, args: [Argument] = [], includes: Condition = Condition(),
            excludes: Condition = Condition()
        ) {
            self.names = names
            self.action = action
            self.args = args
            self.includes = includes
            self.excludes = excludes
        }
    }

    public var defaultAction: Action
    /// Extra architectures (libseccomp names) per native one: compat 32-bit ABIs.
    public var architectures: [String: [String]]
    public var rules: [Rule]

    public init(defaultAction: Action, architectures: [String: [String]], rules: [Rule]) {
        self.defaultAction = defaultAction
        self.architectures = architectures
        self.rules = rules
    }

    /// The native architecture in docker's (Go's) spelling.
    public static var nativeGoArch: String {
        switch String(cString: urun_seccomp_native_arch()) {
        case "x86_64": return "amd64"
        case "aarch64": return "arm64"
        case "x86": return "x86"
        case "arm": return "arm"
        default: return "other"
        }
    }

    /// The rules that apply to a container holding `caps` on this machine.
    public func rules(for caps: Capabilities, arch: String = nativeGoArch, kernel: KernelVersion? = .running) -> [Rule] {
        rules.filter { rule in
            if !rule.includes.caps.allSatisfy(caps.contains) { return false }
            if !rule.includes.arches.isEmpty && !rule.includes.arches.contains(arch) { return false }
            if let minimum = rule.includes.minKernel, let kernel, kernel < minimum { return false }
            if !rule.excludes.caps.isEmpty && rule.excludes.caps.contains(where: caps.contains) { return false }
            if rule.excludes.arches.contains(arch) { return false }
            return true
        }
    }

    /// The BPF program for a container holding `caps`, compiled by libseccomp.
    public func compile(for caps: Capabilities) throws(UrunError) -> [UInt8] {
        guard let context = urun_seccomp_new(defaultAction.encoded) else {
            throw .invalid("seccomp: cannot create a filter")
        }
        defer { urun_seccomp_free(context) }
        let native = String(cString: urun_seccomp_native_arch())
        for arch in architectures[native] ?? [] {
            let rc = urun_seccomp_add_arch(context, arch)
            guard rc == 0 else { throw .kernel(.exec, path: "seccomp architecture \(arch)", Errno(rawValue: -rc)) }
        }
        for rule in rules(for: caps) where rule.action != defaultAction {
            let args = rule.args.map { urun_seccomp_arg(index: $0.index, op: $0.op.rawValue, value: $0.value, value_two: $0.valueTwo) }
            for name in rule.names {
                let rc = args.withUnsafeBufferPointer { urun_seccomp_rule(context, rule.action.encoded, name, UInt32($0.count), $0.baseAddress) }
                guard rc >= 0 else { throw .invalid("seccomp: the rule for \(name) was refused: \(Errno(rawValue: -rc).message)") }
            }
        }
        // libseccomp writes the program to a descriptor: a memfd keeps it off the disk.
        let fd = urun_memfd("urun-seccomp")
        guard fd >= 0 else { throw .kernel(.exec, path: "memfd_create", .current) }
        defer { closeQuietly(fd) }
        let rc = urun_seccomp_export(context, fd)
        guard rc == 0 else { throw .invalid("seccomp: cannot export the filter: \(Errno(rawValue: -rc).message)") }
        lseek(fd, 0, SEEK_SET)
        return try readAll(fd)
    }

    /// The program for `caps`, from the cache when it was compiled before:
    /// compiling a profile takes milliseconds, loading a program microseconds.
    /// `identity` names the profile's content.
    public func program(for caps: Capabilities, identity: String, cache: String) throws(UrunError) -> [UInt8] {
        let key = "\(identity)-\(String(caps.mask, radix: 16))-\(String(cString: urun_seccomp_native_arch()))"
        let path = cache + "/seccomp/" + key + ".bpf"
        if let cached = try? readFile(path), !cached.isEmpty, cached.count % 8 == 0 { return cached }
        let program = try compile(for: caps)
        if (try? makeDirectories(cache + "/seccomp", mode: 0o755)) != nil {
            let temporary = path + ".tmp-\(getpid())"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd >= 0 {
                let written = program.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                closeQuietly(fd)
                if written == program.count { rename(temporary, path) } else { unlink(temporary) }
            }
        }
        return program
    }

    /// Installs a compiled program on this process (the last thing before exec).
    public static func load(_ program: [UInt8]) throws(UrunError) {
        try sys(.loadSeccomp, explain: "prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, \(program.count / 8) BPF instructions)") {
            program.withUnsafeBytes { urun_seccomp_load($0.baseAddress, $0.count) }
        }
    }
}
