import Foundation
import Glibc
import Testing
import UrunTestSupport

/// The limits themselves, proven on a pure cgroup v2 host made on the spot.
/// This project's CI machine has hybrid cgroups, whose cgroup2 holds no
/// resource controller (CgroupTests asserts the refusals there), so
/// Helpers/verify-limits-vm boots a throwaway VM with the distribution's
/// kernel from /boot and cgroup2 as its only hierarchy, where an unprivileged user runs
/// urun with each limit and Helpers/verify-limits measures what it did.
@Suite(harnessAvailable, .requiring(VirtualMachine.missing == nil, VirtualMachine.missing ?? ""))
struct PureCgroupV2Tests {
    let h = Harness.shared

    @Test func everyLimitIsEnforcedForAnUnprivilegedUser() {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.packageRoot + "/Helpers/verify-limits-vm")
        process.arguments = [h.binary, h.image()]
        let result = Harness.run(process, stdin: nil, workspace: h.workspace, timeout: 900)
        let verdicts = result.lines.filter { $0.hasPrefix("PASS") || $0.hasPrefix("FAIL") || $0.hasPrefix("io without") }
        print(verdicts.joined(separator: "\n"))
        #expect(result.status == 0, "\(result)")
        let passed = verdicts.filter { $0.hasPrefix("PASS") }
        for flag in [
            "--memory 32m:", "--memory 32m --memory-swap 64m", "--memory 32m --memory-swap 32m",
            "--memory-reservation 40m", "--pids-limit 20", "--cpu-shares 512", "--cpus 0.5", "--cpuset-cpus 0", "--cpu-weight 300",
            "--device-write-bps", "--device-read-bps", "--device-write-iops", "--device-read-iops", "urun stats",
        ] {
            #expect(passed.contains { $0.hasPrefix("PASS  \(flag)") }, "\(flag) was not proven:\n\(result)")
        }
    }
}

/// What Helpers/verify-limits-vm needs, or why the host lacks it.
enum VirtualMachine {
    static let missing: String? = {
        if getuid() != 0 { return "booting the pure cgroup v2 VM needs root (the kernel image is root's): run the tests as root, as CI does" }
        if Harness.sh("command -v qemu-system-x86_64").status != 0 {
            return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86): the limits are not proven on this hybrid host"
        }
        let kernels = ((try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? []).filter { $0.hasPrefix("vmlinuz-") }
        if !kernels.contains(where: { access("/lib/modules/" + $0.dropFirst("vmlinuz-".count), R_OK) == 0 }) {
            return "no kernel with its modules in /boot (apt-get install linux-image-amd64): the limits are not proven on this hybrid host"
        }
        return nil
    }()
}
