import CUrunSecurity
import CUrunSyscalls
import Glibc
import Testing
import UrunKernel
@testable import UrunSecurity

@Suite struct CapabilityTests {
    @Test func dockersDefaultSet() {
        // The mask docker containers show as CapEff in /proc/self/status.
        #expect(Capabilities.dockerDefault.mask == 0xa804_25fb)
        #expect(Capabilities.dockerDefault.names.count == 14)
        #expect(Capabilities.dockerDefault.contains("CAP_NET_RAW"))
        #expect(!Capabilities.dockerDefault.contains("sys_admin"))
    }

    @Test func addAndDropAsDockerDoes() throws {
        let caps = try Capabilities.resolve(adding: ["cap_sys_admin", "Sys_Ptrace"], dropping: ["NET_RAW", "CAP_MKNOD"])
        #expect(caps.contains("SYS_ADMIN") && caps.contains("SYS_PTRACE"))
        #expect(!caps.contains("NET_RAW") && !caps.contains("MKNOD"))
        #expect(caps.names.count == 14)
        // Drops come first: "drop ALL, add one" leaves exactly one.
        #expect(try Capabilities.resolve(adding: ["CHOWN"], dropping: ["ALL"]).names == ["CHOWN"])
        #expect(try Capabilities.resolve(adding: ["ALL"], dropping: []) == .all)
        #expect(Capabilities.all.names.count == Int(urun_cap_last()) + 1)
        #expect(throws: UrunError.self) { try Capabilities.resolve(adding: ["WIZARD"], dropping: []) }
        #expect(throws: UrunError.self) { try Capabilities.resolve(adding: [], dropping: ["CAP_"]) }
    }
}

@Suite struct PolicyTests {
    func policy(_ options: [String], files: [String: String] = [:]) throws -> SecurityPolicy {
        var policy = SecurityPolicy()
        for option in options {
            try policy.apply(option: option) { (path) throws(UrunError) in
                guard let text = files[path] else { throw .kernel(.readFile, path: path, .noSuchFileOrDirectory) }
                return text
            }
        }
        return policy
    }

    @Test func defaultsAreDockers() throws {
        let p = SecurityPolicy()
        #expect(p.noNewPrivileges)
        #expect(p.effectiveCapabilities == .dockerDefault)
        #expect(p.masked == SecurityPolicy.maskedPaths)
        #expect(p.readOnly == SecurityPolicy.readOnlyPaths)
        #expect(try p.seccompProfile()?.identity == SeccompProfile.defaultIdentity)
    }

    @Test func securityOptions() throws {
        #expect(try policy(["no-new-privileges=false"]).noNewPrivileges == false)
        #expect(try policy(["no-new-privileges=false", "no-new-privileges"]).noNewPrivileges)
        #expect(try policy(["seccomp=unconfined"]).seccompProfile() == nil)
        let unmasked = try policy(["unmask=/proc/keys:/proc/sys"])
        #expect(!unmasked.masked.contains("/proc/keys") && unmasked.masked.contains("/proc/kcore"))
        #expect(!unmasked.readOnly.contains("/proc/sys") && unmasked.readOnly.contains("/proc/bus"))
        let all = try policy(["unmask=ALL"])
        #expect(all.masked.isEmpty && all.readOnly.isEmpty)
        for bad in ["no-new-privileges=maybe", "seccomp", "unmask=", "label=disable", "apparmor=unconfined", "color=blue"] {
            #expect(throws: UrunError.self, "\(bad)") { try policy([bad]) }
        }
        // A profile is read and checked when the option is parsed.
        let error = #expect(throws: UrunError.self) {
            try policy(["seccomp=p.json"], files: ["p.json": #"{"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}"#])
        }
        #expect(error?.description.contains("p.json") == true)
        #expect(error?.description.contains("defaultAction") == true)
    }

    @Test func privilegedMeansEverythingAndNoFilter() throws {
        var p = SecurityPolicy()
        p.privileged = true
        p.capabilities = try Capabilities.resolve(adding: [], dropping: ["ALL"])
        #expect(p.effectiveCapabilities == .all)
        #expect(try p.seccompProfile() == nil)
        #expect(p.masked.isEmpty && p.readOnly.isEmpty)
    }

    @Test func survivesConfigJSON() throws {
        var p = try policy(["no-new-privileges=false", "unmask=/proc/keys"])
        p.capabilities = try Capabilities.resolve(adding: ["SYS_ADMIN"], dropping: ["NET_RAW"])
        #expect(try SecurityPolicy(json: JSON(parsing: p.json.serialized())) == p)
        let custom = try policy(["seccomp=x.json"], files: ["x.json": #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": null}"#])
        #expect(try SecurityPolicy(json: JSON(parsing: custom.json.serialized())) == custom)
        #expect(try SecurityPolicy(json: JSON(parsing: "{}")) == SecurityPolicy(), "an older config.json gets the defaults")
    }
}

@Suite struct ProfileTests {
    /// A profile in the shape of docker's default.json (moby's
    /// profiles/seccomp/default.json): archMap with sub-architectures,
    /// defaultErrnoRet, and rules with args, comments, includes and excludes
    /// by capability, architecture and kernel version.
    static let dockerShaped = """
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
                {"architecture": "SCMP_ARCH_MIPS64", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]},
                {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null}
            ],
            "syscalls": [
                {"names": ["accept", "read", "write", "exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["process_vm_readv", "ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]},
                 "comment": "s390 parameter ordering for clone is different"},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["mount", "umount2", "unshare"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT"]}},
                {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ALLOW"}
            ]
        }
        """

    func parse(_ text: String) throws -> SeccompProfile {
        try SeccompProfile(json: JSON(parsing: text), source: "test.json")
    }

    @Test func readsDockersFormat() throws {
        let profile = try parse(Self.dockerShaped)
        #expect(profile.defaultAction == .errno(1))
        #expect(profile.architectures["x86_64"] == ["x86", "x32"])
        #expect(profile.architectures["aarch64"] == ["arm"])
        #expect(profile.rules.count == 10)
        #expect(profile.rules[2].args == [SeccompProfile.Argument(0, .notEqual, 40)])
        #expect(profile.rules[4].excludes.caps == ["SYS_ADMIN"])
        #expect(profile.rules[5].action == .errno(38))

        let names = { (caps: Capabilities, arch: String, kernel: KernelVersion) in
            Set(profile.rules(for: caps, arch: arch, kernel: kernel).flatMap(\.names))
        }
        let plain = names(.dockerDefault, "amd64", KernelVersion(6, 1))
        #expect(plain.contains("clone") && plain.contains("clone3") && plain.contains("arch_prctl"))
        #expect(!plain.contains("mount") && !plain.contains("reboot"))
        #expect(plain.contains("ptrace"))
        #expect(!names(.dockerDefault, "amd64", KernelVersion(4, 4)).contains("ptrace"), "minKernel 4.8")
        #expect(!names(.dockerDefault, "arm64", KernelVersion(6, 1)).contains("arch_prctl"))
        let admin = names(try Capabilities.resolve(adding: ["SYS_ADMIN"], dropping: []), "amd64", KernelVersion(6, 1))
        #expect(admin.contains("mount") && !admin.contains("clone3"), "clone3's ENOSYS rule is for containers without SYS_ADMIN")
        // Syscalls libseccomp does not know are skipped, as docker skips them.
        #expect(try profile.compile(for: .dockerDefault).count > 0)
    }

    @Test func malformedProfilesNameTheField() throws {
        let cases: [(String, String)] = [
            ("[]", "the profile"),
            (#"{"syscalls": []}"#, "defaultAction"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO"}"#, "syscalls"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#, "syscalls[0].names"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}"#, "syscalls[0].action"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_MAYBE"}]}"#, "syscalls[0].action"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#, "syscalls[0].args[0].op"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#, "syscalls[0].args[0].index"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "six"}}]}"#, "syscalls[0].includes.minKernel"),
            // Numbers out of range are refused, never truncated or trapped on.
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4294967296, "syscalls": []}"#, "defaultErrnoRet"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1, "syscalls": []}"#, "defaultErrnoRet"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}"#, "syscalls[0].errnoRet"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 18446744073709551616, "op": "SCMP_CMP_EQ"}]}]}"#, "syscalls[0].args[0].value"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "valueTwo": -3, "op": "SCMP_CMP_EQ"}]}]}"#, "syscalls[0].args[0].valueTwo"),
        ]
        for (text, field) in cases {
            let error = #expect(throws: UrunError.self, "\(text)") { try parse(text) }
            #expect(error?.description.contains("test.json") == true, "\(text)")
            #expect(error?.description.contains(field) == true, "\(text) → \(error?.description ?? "")")
        }
    }

    @Test func defaultProfileCompilesAndIsCached() throws {
        let cache = "/tmp/urun-seccomp-test-\(getpid())"
        defer { try? removeTree(cache) }
        let program = try SeccompProfile.default.program(
            for: .dockerDefault, identity: SeccompProfile.defaultIdentity, cache: cache)
        #expect(program.count % 8 == 0 && program.count > 8 * 100, "a BPF program: 8 bytes per instruction")
        let files = try directoryEntries(cache + "/seccomp")
        #expect(files.count == 1 && files[0].hasPrefix(SeccompProfile.defaultIdentity + "-a80425fb-"), "\(files)")
        #expect(try SeccompProfile.default.program(for: .dockerDefault, identity: SeccompProfile.defaultIdentity, cache: cache) == program)
        let admin = try Capabilities.resolve(adding: ["SYS_ADMIN"], dropping: [])
        #expect(try SeccompProfile.default.program(for: admin, identity: SeccompProfile.defaultIdentity, cache: cache) != program)
    }

    /// Loads `program` in a forked child, which then runs `attempt` and exits
    /// with the errno it got (0 on success). The child calls only C: the test
    /// process has threads.
    func errnoUnderFilter(_ program: [UInt8], _ attempt: @convention(c) () -> CInt) -> CInt {
        program.withUnsafeBytes { bytes in
            let pid = fork()
            if pid == 0 {
                if urun_set_no_new_privs() != 0 || urun_seccomp_load(bytes.baseAddress, bytes.count) != 0 { _exit(200) }
                _exit(attempt() < 0 ? errno : 0)
            }
            var status: CInt = 0
            waitpid(pid, &status, 0)
            return (status >> 8) & 0xff
        }
    }

    @Test func theKernelEnforcesTheDefaultProfile() throws {
        let program = try SeccompProfile.default.compile(for: .dockerDefault)
        #expect(errnoUnderFilter(program) { getppid() > 0 ? 0 : -1 } == 0, "allowed")
        #expect(errnoUnderFilter(program) { mount("none", "/", "tmpfs", 0, nil) } == EPERM)
        #expect(errnoUnderFilter(program) { urun_unshare(CInt(URUN_CLONE_NEWUSER)) } == EPERM)
        #expect(errnoUnderFilter(program) { socket(40, CInt(SOCK_STREAM.rawValue), 0) } == EPERM, "AF_VSOCK")
        #expect(errnoUnderFilter(program) { socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0) } == 0)
        // With SYS_ADMIN the filter lets unshare through (the kernel then decides).
        let admin = try SeccompProfile.default.compile(for: try Capabilities.resolve(adding: ["SYS_ADMIN"], dropping: []))
        #expect(errnoUnderFilter(admin) { urun_unshare(CInt(URUN_CLONE_NEWUSER)) } != EPERM)
    }

    @Test func theKernelEnforcesACustomProfile() throws {
        let profile = try parse(#"""
            {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
            """#)
        let program = try profile.compile(for: .dockerDefault)
        #expect(errnoUnderFilter(program) { mkdir("/proc/urun-never", 0o755) } == EACCES)
        #expect(errnoUnderFilter(program) { getppid() > 0 ? 0 : -1 } == 0)
    }
}
