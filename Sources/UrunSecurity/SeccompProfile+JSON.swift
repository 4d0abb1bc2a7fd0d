import UrunKernel

/// docker's seccomp profile format (`--security-opt seccomp=PROFILE.json`):
/// defaultAction, defaultErrnoRet, architectures or archMap, and syscalls
/// with names, action, errnoRet, args, includes and excludes.
extension SeccompProfile {
    public init(json: JSON, source: String) throws(UrunError) {
        func bad(_ field: String, _ reason: String) -> UrunError {
            .invalid("seccomp profile \(source): \(field): \(reason)")
        }
        guard json.members != nil else { throw bad("the profile", "expected a JSON object") }
        guard let defaultName = json["defaultAction"]?.string else { throw bad("defaultAction", "missing") }
        // errno values live in 12 bits (MAX_ERRNO): anything else is refused, never truncated.
        func errnoValue(_ value: JSON?, field: String) throws(UrunError) -> UInt32 {
            guard let value else { return 1 }
            guard let number = value.integer(UInt32.self), number <= 4095 else { throw bad(field, "expected an errno from 0 to 4095") }
            return number
        }
        let defaultErrno = try errnoValue(json["defaultErrnoRet"], field: "defaultErrnoRet")
        defaultAction = try Self.action(defaultName, errno: defaultErrno, field: "defaultAction", source: source)

        architectures = [:]
        if let map = json["archMap"]?.array {
            for (i, entry) in map.enumerated() {
                guard let name = entry["architecture"]?.string, name.hasPrefix("SCMP_ARCH_") else {
                    throw bad("archMap[\(i)].architecture", "missing, or not an SCMP_ARCH_ name")
                }
                // docker's profile lists mips, ppc, s390 and riscv too: not this machine's.
                guard let main = Self.architecture(name) else { continue }
                architectures[main] = (entry["subArchitectures"]?.strings ?? []).compactMap(Self.architecture)
            }
        } else if let list = json["architectures"]?.strings {
            // The older flat list: the native architecture and its companions.
            let names = list.compactMap(Self.architecture)
            for name in names { architectures[name] = names.filter { $0 != name } }
        }

        guard let syscalls = json["syscalls"]?.array ?? (json["syscalls"]?.isNull == true ? [] : nil) else {
            throw bad("syscalls", "missing")
        }
        var rules: [Rule] = []
        for (i, entry) in syscalls.enumerated() {
            let field = "syscalls[\(i)]"
            var names = entry["names"]?.strings ?? []
            if let name = entry["name"]?.string { names.append(name) }
            guard !names.isEmpty else { throw bad(field + ".names", "missing or not a list of strings") }
            guard let actionName = entry["action"]?.string else { throw bad(field + ".action", "missing") }
            let errno = try errnoValue(entry["errnoRet"], field: field + ".errnoRet")
            let action = try Self.action(actionName, errno: errno, field: field + ".action", source: source)
            var args: [Argument] = []
            for (j, arg) in (entry["args"]?.array ?? []).enumerated() {
                guard let index = arg["index"]?.uint64, index < 6 else { throw bad("\(field).args[\(j)].index", "expected 0 to 5") }
                guard let value = arg["value"]?.uint64 else { throw bad("\(field).args[\(j)].value", "expected a number from 0 to 2^64-1") }
                guard let opName = arg["op"]?.string, let op = Self.operators[opName] else {
                    throw bad("\(field).args[\(j)].op", "unknown operator \(arg["op"]?.string ?? "(missing)")")
                }
                let valueTwo = arg["valueTwo"].map { $0.uint64 } ?? 0
                guard let valueTwo else { throw bad("\(field).args[\(j)].valueTwo", "expected a number from 0 to 2^64-1") }
                args.append(Argument(UInt32(index), op, value, valueTwo))
            }
            rules.append(
                Rule(
                    names, action, args: args,
                    includes: try Self.condition(entry["includes"], field: field + ".includes", source: source),
                    excludes: try Self.condition(entry["excludes"], field: field + ".excludes", source: source)))
        }
        self.rules = rules
    }

    static let operators: [String: Operator] = [
        "SCMP_CMP_NE": .notEqual, "SCMP_CMP_LT": .lessThan, "SCMP_CMP_LE": .lessOrEqual, "SCMP_CMP_EQ": .equal,
        "SCMP_CMP_GE": .greaterOrEqual, "SCMP_CMP_GT": .greaterThan, "SCMP_CMP_MASKED_EQ": .maskedEqual,
    ]

    static func action(_ name: String, errno: UInt32, field: String, source: String) throws(UrunError) -> Action {
        switch name {
        case "SCMP_ACT_ALLOW": return .allow
        case "SCMP_ACT_ERRNO": return .errno(errno)
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return .killThread
        case "SCMP_ACT_KILL_PROCESS": return .killProcess
        case "SCMP_ACT_TRAP": return .trap
        case "SCMP_ACT_TRACE": return .trace(errno)
        case "SCMP_ACT_LOG": return .log
        default: throw .invalid("seccomp profile \(source): \(field): unknown or unsupported action \"\(name)\"")
        }
    }

    /// SCMP_ARCH_X86_64 → libseccomp's "x86_64"; nil for architectures urun does not run on.
    static func architecture(_ name: String) -> String? {
        let known = ["SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X32": "x32",
                     "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_ARM": "arm"]
        return known[name]
    }

    static func condition(_ json: JSON?, field: String, source: String) throws(UrunError) -> Condition {
        guard let json, !json.isNull else { return Condition() }
        guard json.members != nil else { throw .invalid("seccomp profile \(source): \(field): expected an object") }
        var condition = Condition()
        condition.caps = (json["caps"]?.strings ?? []).map { $0.hasPrefix("CAP_") ? String($0.dropFirst(4)) : $0 }
        condition.arches = json["arches"]?.strings ?? []
        if let text = json["minKernel"]?.string {
            let parts = text.split(separator: ".").compactMap { Int($0) }
            guard parts.count >= 2 else { throw .invalid("seccomp profile \(source): \(field).minKernel: expected MAJOR.MINOR") }
            condition.minKernel = KernelVersion(parts[0], parts[1])
        }
        return condition
    }
}
