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
        let r = h.urun(["--network", "pasta", h.image(), "sh", "-c", "ip -o -4 addr show eth0 | grep -c inet; ip route | grep -c '^default'; grep nameserver /etc/resolv.conf; grep -c host.containers.internal /etc/hosts"])
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

    /// Whether a pasta forwarding `ports` (its `-t`/`-u` argument) runs. Only
    /// this test's pasta: other suites' containers run theirs at the same time.
    /// (pasta's processes are called pasta in argv[0]; the binary is passt.avx2 or passt.)
    func pastaRunning(forwarding ports: String) -> Bool {
        Harness.sh("pgrep -u \(h.uid) -f '^/usr/bin/pasta .*-ports \(ports) '").status == 0
    }

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
        let address = Harness.sh("ip -4 -o addr show scope global | awk '{ sub(\"/.*\", \"\", $4); print $4; exit }'").text
        #expect(waitFor { hostSide("\(probe) send \(address) 18081 ping").stdout == "pong:ping\n" }, "UDP through -p")
        let inspect = h.urun(["inspect", "srv"], root: root).stdout
        #expect(inspect.contains("0.0.0.0:18080->8080/tcp") && inspect.contains("0.0.0.0:18081->8081/udp"), "\(inspect)")
        #expect(pastaRunning(forwarding: "18080:8080"))
        #expect(h.urun(["rm", "-f", "srv"], root: root).status == 0)
        #expect(waitFor { !pastaRunning(forwarding: "18080:8080") }, "pasta is gone with its container")
    }

    @Test func theHelperDiesWithAKilledUrun() throws {
        // setpriv and env exec urun: the process started is urun, pasta's parent.
        let urun = h.start([h.binary, "--network", "pasta", h.image(), "sleep", "3131"], environment: ["URUN_ROOT": h.sharedRoot])
        var pasta: pid_t?
        #expect(waitFor {
            pasta = pid_t(Harness.sh("pgrep -P \(urun.processIdentifier) -f '^/usr/bin/pasta '").text)
            return pasta != nil
        })
        kill(urun.processIdentifier, SIGKILL)
        urun.waitUntilExit()
        if let pasta {
            #expect(waitFor { kill(pasta, 0) != 0 }, "PR_SET_PDEATHSIG took pasta along")
        }
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 3131'").status != 0 }, "the container went with urun")
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
        #expect(waitFor { !pastaRunning(forwarding: "18090:80") && !pastaRunning(forwarding: "80:80") }, "no helper left behind")
    }

    /// slirp4netns, podman's older helper: its own 10.0.2.0/24 network, DNS
    /// at 10.0.2.3, the host's loopback at 10.0.2.2, ports through its API.
    @Test func slirp4netnsIsAHelperToo() throws {
        try #require(access("/usr/bin/slirp4netns", X_OK) == 0, "slirp4netns is not installed (apt-get install slirp4netns)")
        let r = h.urun(["--network", "slirp4netns", h.image(), "sh", "-c",
                        "ip -o -4 addr show eth0 | awk '{print $4}'; ip route | grep '^default'; grep nameserver /etc/resolv.conf; grep host.containers.internal /etc/hosts"])
        #expect(r.lines == ["10.0.2.100/24", "default via 10.0.2.2 dev eth0 ", "nameserver 10.0.2.3", "10.0.2.2\thost.containers.internal host.urun.internal"], "\(r)")

        let server = h.start(["/bin/busybox", "sh", "-c", "while :; do echo hello-from-host | busybox nc -l -p 17778; done"])
        defer {
            server.terminate()
            Harness.sh("pkill -9 -u \(h.uid) -f 'nc -l -p 17778'")
        }
        #expect(waitFor { listening(17778) })
        let out = h.urun(["--network", "slirp4netns", h.image(), "sh", "-c", "timeout 3 nc host.containers.internal 17778 </dev/null"])
        #expect(out.stdout == "hello-from-host\n", "\(out)")

        let probe = try #require(udpProbe)
        let root = h.freshRoot()
        let run = h.urun(["run", "-d", "--name", "slirp", "--network", "slirp4netns", "-v", probe + ":/udp-probe:ro",
                          "-p", "18180:8080", "-p", "18181:8081/udp",
                          h.image(), "sh", "-c", "/udp-probe serve 8081 & while :; do echo hi-slirp | nc -l -p 8080; done"], root: root)
        #expect(run.status == 0, "\(run)")
        #expect(waitFor { hostSide("busybox nc 127.0.0.1 18180 </dev/null").stdout == "hi-slirp\n" }, "TCP through -p")
        #expect(waitFor { hostSide("\(probe) send 127.0.0.1 18181 ping").stdout == "pong:ping\n" }, "UDP through -p")
        let pid = h.urun(["inspect", "-f", "{{.State.Pid}}", "slirp"], root: root).text
        // This container's slirp4netns: the tutorials may run one at the same time.
        let slirpRunning = { Harness.sh("pgrep -u \(h.uid) -f '^/usr/bin/slirp4netns .*/proc/\(pid)/ns/net'").status == 0 }
        #expect(slirpRunning())
        let busy = h.urun(["--network", "slirp4netns", "-p", "18180:80", h.image(), "true"], root: root)
        #expect(busy.status == 125 && busy.stderr.contains("18180"), "\(busy)")
        #expect(h.urun(["rm", "-f", "slirp"], root: root).status == 0)
        #expect(waitFor { !slirpRunning() }, "slirp4netns is gone with its container")
        #expect(Harness.sh("ls -d /tmp/urun-slirp-* 2>/dev/null").stdout.isEmpty, "the API socket's directory is removed")
    }

    /// The default network without published ports comes from slirp4netns,
    /// the helper that starts fastest; with ports from pasta; each falls back
    /// to the other where only one is installed.
    @Test func theDefaultHelperDependsOnPublishedPorts() throws {
        try #require(access("/usr/bin/slirp4netns", X_OK) == 0, "slirp4netns is not installed (apt-get install slirp4netns)")
        let address = "ip -o -4 addr show eth0 | awk '{print $4}'"
        let plain = h.urun([h.image(), "sh", "-c", address])
        #expect(plain.status == 0 && plain.lines == ["10.0.2.100/24"], "\(plain)")
        let published = h.urun(["-p", "18095:80", h.image(), "sh", "-c", address + "; grep nameserver /etc/resolv.conf"])
        #expect(published.status == 0 && published.lines.last == "nameserver 169.254.1.1" && !published.stdout.contains("10.0.2.100"), "\(published)")

        let pastaOnly = h.urun([h.image(), "sh", "-c", "grep nameserver /etc/resolv.conf"], environment: ["PATH": h.pathDirectory(linking: ["/usr/bin/pasta"])])
        #expect(pastaOnly.lines == ["nameserver 169.254.1.1"], "\(pastaOnly)")
        let bin = h.pathDirectory(linking: ["/usr/bin/slirp4netns"])
        let r = h.urun(["-p", "18096:80", h.image(), "sh", "-c", address], environment: ["PATH": bin])
        #expect(r.status == 0 && r.lines == ["10.0.2.100/24"], "\(r)")
        let neither = h.urun([h.image(), "ls", "/sys/class/net"], environment: ["PATH": "/nonexistent"])
        #expect(neither.lines == ["lo"] && neither.stderr.contains("apt-get install slirp4netns or passt"), "\(neither)")
        let explicit = h.urun(["--network", "private", h.image(), "true"], environment: ["PATH": "/nonexistent"])
        #expect(explicit.status == 125 && explicit.stderr.contains("not installed"), "\(explicit)")
    }

    /// The helper starts while the child mounts. When the child fails there,
    /// its namespaces go with it and the helper fails too: the child's own
    /// error is the one line said, for the default network and each helper.
    @Test func aFailureInTheChildIsReportedNotTheHelpersAfterIt() throws {
        try #require(access("/usr/bin/slirp4netns", X_OK) == 0, "slirp4netns is not installed (apt-get install slirp4netns)")
        let root = h.freshRoot()
        for network in [[], ["--network", "slirp4netns"], ["--network", "pasta"], ["-p", "18097:80"]] {
            let r = h.urun(network + ["-v", "/etc/hostname:/bin", h.image(), "true"], root: root)
            #expect(r.status == 125 && r.stderr == "urun: bind volume /bin: invalid argument (EINVAL)\n", "\(network): \(r)")
        }
        let left = Harness.sh("ls -A \(root)/data/containers 2>/dev/null | grep -v '^.lock$'")
        #expect(left.stdout.isEmpty, "\(left)")
    }

    /// --network container:NAME: the other container's network (and user
    /// namespace), hostname, hosts and resolv.conf; its own PID namespace.
    @Test func aContainerJoinsAnothersNetwork() throws {
        let root = h.freshRoot()
        let run = h.urun(["run", "-d", "--name", "web", "--hostname", "webhost", "--add-host", "db:10.9.8.7", h.image(), "sh", "-c",
                          "while :; do echo from-web | nc -l -p 8080; done"], root: root)
        #expect(run.status == 0, "\(run)")
        // `run -d` returns once web's shell runs, maybe before its nc listens: ask until it answers.
        let ask = "for i in $(seq 50); do r=$(timeout 3 nc 127.0.0.1 8080 </dev/null) && [ -n \"$r\" ] && break; sleep 0.1; done; echo $r"
        let joined = h.urun(["--network", "container:web", h.image(), "sh", "-c",
                             ask + "; hostname; grep -c db /etc/hosts; echo $$; ps -o comm | grep -c '^nc$'; id -u"],
                            root: root)
        #expect(joined.lines == ["from-web", "webhost", "1", "1", "0", "0"], "\(joined)")
        let inspect = h.urun(["inspect", "web"], root: root).stdout
        let web = try #require(inspect.firstMatch(of: /"Pid": (\d+)/)?.1, "\(inspect)")
        let ours = h.urun(["--network", "container:web", h.image(), "sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/user"], root: root)
        let theirs = Harness.sh("readlink /proc/\(web)/ns/net /proc/\(web)/ns/user")
        #expect(!ours.lines.isEmpty && ours.lines == theirs.lines, "\(ours) \(theirs)")

        let conflict = h.urun(["--network", "container:web", "-p", "8081:80", h.image(), "true"], root: root)
        #expect(conflict.status == 125 && conflict.stderr.contains("conflicts with --network container:web"), "\(conflict)")
        let missing = h.urun(["--network", "container:nope", h.image(), "true"], root: root)
        #expect(missing.status == 125 && missing.stderr.contains("nope"), "\(missing)")
        #expect(h.urun(["stop", "-t", "1", "web"], root: root).status == 0)
        let stopped = h.urun(["--network", "container:web", h.image(), "true"], root: root)
        #expect(stopped.status == 125 && stopped.stderr.contains("not running"), "\(stopped)")
        #expect(h.urun(["rm", "-f", "web"], root: root).status == 0)
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
