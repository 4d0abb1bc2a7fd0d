import Foundation
import Glibc
import Testing
import UrunTestSupport
import UrunKernel
@testable import UrunCgroups

/// The freezer and cgroup.kill on a real cgroup v2 (the lifecycle verbs build
/// on these). Making a cgroup outside a delegated subtree needs root; the
/// unprivileged path runs in the integration tests through `urun pause` and `urun kill`.
@Suite(.requiring(getuid() == 0 && CgroupHierarchy.discover() != nil, "needs root and a cgroup2 mount"))
struct FreezerTests {
    @Test func freezeThawAndKillAWholeCgroup() throws {
        let hierarchy = try #require(CgroupHierarchy.discover())
        let cgroup = Cgroup(path: hierarchy.mountPoint + "/urun-freezer-test-\(getpid())")
        try cgroup.create()
        defer { try? cgroup.remove() }
        let counter = "/tmp/urun-freezer-\(getpid())"
        defer { unlink(counter) }
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: "/bin/sh")
        worker.arguments = ["-c", "while :; do echo x >> \(counter); sleep 0.005; done"]
        try worker.run()
        try cgroup.add(pid: worker.processIdentifier)
        #expect(try cgroup.processes() == [worker.processIdentifier])

        func size() -> Int { Int(fileStatus(counter)?.st_size ?? 0) }
        usleep(100_000)
        try cgroup.freeze()
        #expect(cgroup.isFrozen)
        let frozenAt = size()
        usleep(200_000)
        #expect(size() == frozenAt, "a frozen cgroup's processes do not run")
        try cgroup.thaw()
        usleep(200_000)
        #expect(size() > frozenAt, "thawed, they run again")

        try cgroup.kill()
        worker.waitUntilExit()
        #expect(worker.terminationReason == .uncaughtSignal && worker.terminationStatus == SIGKILL)
        try cgroup.remove()
        #expect(fileStatus(cgroup.path) == nil)
    }
}
