import UrunKernel

extension SeccompProfile {
    /// The rules that apply to `caps` on this machine, written back in the
    /// format the runtime spec and docker share (what `init(json:)` reads):
    /// the profile `urun run --print-config` shows is the one it would load.
    public func json(for caps: Capabilities) -> JSON {
        func action(_ action: Action) -> [(String, JSON)] {
            switch action {
            case .allow: return [("action", .string("SCMP_ACT_ALLOW"))]
            case .errno(let e): return [("action", .string("SCMP_ACT_ERRNO")), ("errnoRet", .int(e))]
            case .killProcess: return [("action", .string("SCMP_ACT_KILL_PROCESS"))]
            case .killThread: return [("action", .string("SCMP_ACT_KILL_THREAD"))]
            case .trap: return [("action", .string("SCMP_ACT_TRAP"))]
            case .trace(let v): return [("action", .string("SCMP_ACT_TRACE")), ("errnoRet", .int(v))]
            case .log: return [("action", .string("SCMP_ACT_LOG"))]
            }
        }
        let native = Self.nativeGoArch == "arm64" ? "aarch64" : "x86_64"
        let arches = ([native] + (architectures[native] ?? [])).map { JSON.string("SCMP_ARCH_" + $0.uppercased()) }
        let syscalls = rules(for: caps).map { rule -> JSON in
            var members: [(String, JSON)] = [("names", .array(rule.names.map(JSON.string)))] + action(rule.action)
            if !rule.args.isEmpty {
                members.append(("args", .array(rule.args.map { arg in
                    let op = Self.operators.first { $0.value == arg.op }?.key ?? "SCMP_CMP_EQ"
                    return .object([("index", .int(arg.index)), ("value", .int(arg.value)), ("valueTwo", .int(arg.valueTwo)), ("op", .string(op))])
                })))
            }
            return .object(members)
        }
        let defaults = action(defaultAction).map { ($0.0 == "action" ? "defaultAction" : "defaultErrnoRet", $0.1) }
        return .object(defaults + [("architectures", .array(arches)), ("syscalls", .array(syscalls))])
    }
}
