import Foundation
import Glibc
import Testing

/// pasta needs /dev/net/tun open to the user. Stock Debian and Ubuntu make it
/// 0666; where it is not (this project's CI machines: 0600), the tests lend
/// it 0666 as root for the rest of the test run and restore it at exit.
enum TunDevice {
    static let usable: String? = {
        guard access("/usr/bin/pasta", X_OK) == 0 else { return "pasta is not installed (apt-get install passt)" }
        var st = stat()
        guard stat("/dev/net/tun", &st) == 0 else { return "this host has no /dev/net/tun" }
        if st.st_mode & 0o006 != 0o006 {
            guard getuid() == 0 else { return "/dev/net/tun is not open to users, and lending it needs root" }
            originalMode = st.st_mode & 0o7777
            chmod("/dev/net/tun", 0o666)
            atexit { chmod("/dev/net/tun", TunDevice.originalMode) }
        }
        return nil
    }()
    nonisolated(unsafe) static var originalMode: mode_t = 0o600
}

let pastaAvailable: ConditionTrait = .enabled(
    if: Harness.shared.isAvailable && TunDevice.usable == nil, Comment(rawValue: TunDevice.usable ?? "the harness is unavailable"))

/// Rootless networking through pasta, as the unprivileged test user. No
/// traffic leaves the machine: servers and clients are on this host.
@Suite(harnessAvailable, pastaAvailable, .serialized) struct NetworkTests {
    let h = Harness.shared

    /// The host side of a test, run as the test user too.
    func hostSide(_ script: String) -> Outcome { h.runAsUser(["/bin/sh", "-c", script]) }

    @Test func privateHasAnInterfaceARouteAndDNS() {
        let r = h.urun([h.image(), "sh", "-c", "ip -o -4 addr show eth0 | grep -c inet; ip route | grep -c '^default'; grep nameserver /etc/resolv.conf; grep -c host.containers.internal /etc/hosts"])
        #expect(r.lines == ["1", "1", "nameserver 169.254.1.1", "1"], "\(r)")
        let none = h.urun(["--network", "none", h.image(), "ls", "/sys/class/net"])
        #expect(none.lines == ["lo"], "\(none)")
        let host = h.urun(["--network", "host", h.image(), "ls", "/sys/class/net"])
        #expect(host.lines.count > 1, "\(host)")
    }

    /// Whether something on the host listens on TCP `port` (state 0A in /proc/net/tcp or tcp6).
    func listening(_ port: Int) -> Bool {
        let hex = String(port, radix: 16, uppercase: true)
        return Harness.sh("cat /proc/net/tcp /proc/net/tcp6 | awk '$4 == \"0A\"' | grep -q ':\(hex) '").status == 0
    }

    /// pasta's helper processes are called pasta in argv[0] (the binary is passt.avx2 or passt).
    var pastaRunning: Bool { Harness.sh("pgrep -u \(h.uid) -f '^/usr/bin/pasta '").status == 0 }

    @Test func aServerOnTheHostsLoopbackIsReachableFromTheContainer() throws {
        let server = h.start(["/bin/busybox", "sh", "-c", "while :; do echo hello-from-host | busybox nc -l -p 17777; done"])
        defer {
            server.terminate()
            Harness.sh("pkill -9 -u \(h.uid) -f 'nc -l -p 17777'")
        }
        #expect(waitFor { listening(17777) })
        var r = Outcome(status: -1, stdout: "", stderr: "")
        #expect(waitFor {
            r = h.urun([h.image(), "sh", "-c", "timeout 3 nc host.containers.internal 17777 </dev/null"], timeout: 15)
            return r.stdout.hasPrefix("hello-from-host\n")
        }, "\(r)")
    }

    @Test func publishedTCPAndUDPPortsReachTheContainer() throws {
        let probe = try #require(udpProbe)
        let root = h.freshRoot()
        let run = h.urun(["run", "-d", "--name", "srv", "-v", probe + ":/udp-probe:ro", "-p", "18080:8080", "-p", "18081:8081/udp",
                          h.image(), "sh", "-c", "/udp-probe serve 8081 & while :; do echo hi-tcp | nc -l -p 8080; done"], root: root)
        #expect(run.status == 0, "\(run)")
        #expect(waitFor { hostSide("busybox nc 127.0.0.1 18080 </dev/null").stdout == "hi-tcp\n" }, "TCP through -p")
        // Debian 12's pasta (2023-03) answers forwarded UDP sent to the host's
        // own address, not to 127.0.0.1 (Docs/networking.md).
        let address = Harness.sh("ip -4 -o addr show scope global | awk '{ sub(\"/.*\", \"\", $4); print $4; exit }'").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(waitFor { hostSide("\(probe) send \(address) 18081 ping").stdout == "pong:ping\n" }, "UDP through -p")
        let inspect = h.urun(["inspect", "srv"], root: root).stdout
        #expect(inspect.contains("0.0.0.0:18080->8080/tcp") && inspect.contains("0.0.0.0:18081->8081/udp"), "\(inspect)")
        #expect(pastaRunning)
        #expect(h.urun(["rm", "-f", "srv"], root: root).status == 0)
        #expect(waitFor { !pastaRunning }, "pasta is gone with its container")
    }

    @Test func theHelperDiesWithAKilledUrun() throws {
        let urun = h.start([h.binary, h.image(), "sleep", "30"], environment: ["URUN_ROOT": h.sharedRoot])
        #expect(waitFor { pastaRunning })
        kill(urun.processIdentifier, SIGKILL)
        urun.waitUntilExit()
        #expect(waitFor { !pastaRunning }, "PR_SET_PDEATHSIG took pasta along")
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x sleep").status != 0 })
    }

    @Test func portsThatCannotBeBoundAreClearErrors() throws {
        let listener = h.start(["/bin/busybox", "nc", "-l", "-p", "18090"])
        defer {
            listener.terminate()
            Harness.sh("pkill -9 -u \(h.uid) -f 'nc -l -p 18090'")
        }
        #expect(waitFor { listening(18090) })
        let busy = h.urun(["-p", "18090:80", h.image(), "true"])
        #expect(busy.status == 125 && busy.stderr.contains("already in use"), "\(busy)")
        let low = h.urun(["-p", "80:80", h.image(), "true"])
        #expect(low.status == 125 && low.stderr.contains("ip_unprivileged_port_start"), "\(low)")
        let none = h.urun(["--network", "none", "-p", "8080:80", h.image(), "true"])
        #expect(none.status == 125, "\(none)")
        #expect(waitFor { !pastaRunning }, "no helper left behind")
    }

    @Test func dnsAndHostsFlags() {
        let r = h.urun(["--dns", "192.0.2.53", "--dns-search", "corp.test", "--dns-option", "ndots:2", "--add-host", "db:10.1.2.3",
                        h.image(), "sh", "-c", "cat /etc/resolv.conf; grep db /etc/hosts"])
        #expect(r.lines.contains("nameserver 192.0.2.53") && !r.stdout.contains("169.254.1.1"), "\(r)")
        #expect(r.lines.contains("search corp.test") && r.lines.contains("options ndots:2"))
        #expect(r.lines.last == "10.1.2.3\tdb")
        #expect(h.urun(["--add-host", "nocolon", h.image(), "true"]).status == 125)
        #expect(h.urun(["--dns", "not-an-ip", h.image(), "true"]).status == 125)
    }
}
