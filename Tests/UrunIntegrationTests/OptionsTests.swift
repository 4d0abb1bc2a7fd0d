import Foundation
import Glibc
import Testing
import UrunTestSupport

/// The options of `urun run`, each observed from inside the container.
@Suite(harnessAvailable) struct OptionsTests {
    let h = Harness.shared

    @Test func environmentIsCleanWithDefaultsAndFlags() throws {
        let envFile = h.freshRoot() + "/env"
        h.runAsUser(["sh", "-c", "printf '# comment\\nFROM_FILE=yes\\nSHARED=file\\n' > \(envFile)"])
        let result = h.urun(
            ["-e", "A=1", "-e", "SHARED=flag", "-e", "PASSED", "--env-file", envFile, h.image(), "env"],
            environment: ["PASSED": "from urun's environment", "LEAKED": "must not appear"])
        #expect(result.status == 0, "\(result)")
        let env = Set(result.lines)
        #expect(env.contains("A=1"))
        #expect(env.contains("FROM_FILE=yes"))
        #expect(env.contains("SHARED=flag"))  // -e wins over --env-file, as in docker
        #expect(env.contains("PASSED=from urun's environment"))
        #expect(env.contains("HOME=/root"))
        #expect(env.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
        #expect(env.contains { $0.hasPrefix("HOSTNAME=") })
        #expect(!env.contains { $0.hasPrefix("LEAKED=") || $0.hasPrefix("URUN_ROOT=") })
        #expect(h.urun(["--env-file", "/no/such/file", h.image(), "true"]).status == 125)
    }

    /// Flags docker and podman users type (issue 19): --ulimit, --shm-size,
    /// --sysctl, --env-host, --replace, and podman's TERM and container=.
    @Test func runFlagsDockerUsersType() throws {
        let seen = h.urun(
            ["--network", "none", "--ulimit", "nofile=256:512", "--ulimit", "core=0", "--shm-size", "1m",
             "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmni=1000", h.image(), "sh", "-c",
             "ulimit -n; ulimit -Hn; ulimit -c; df -k /dev/shm | tail -1 | awk '{print $2}'; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni; echo $TERM $container"])
        #expect(seen.lines == ["256", "512", "0", "1024", "1", "1000", "xterm urun"], "\(seen)")
        // The host's own settings are untouched.
        #expect((try? String(contentsOfFile: "/proc/sys/kernel/shmmni", encoding: .utf8)) != "1000\n")

        let inherited = h.urun(["--network", "none", "--env-host", "-e", "OVERRIDDEN=by-flag", h.image(), "sh", "-c", "echo $FROM_HOST $OVERRIDDEN"],
                               environment: ["FROM_HOST": "host-value", "OVERRIDDEN": "host"])
        #expect(inherited.text == "host-value by-flag", "\(inherited)")

        for (flags, expected) in [
            (["--ulimit", "nofile=10:5"], "soft limit is above"), (["--ulimit", "files=10"], "NAME=SOFT[:HARD]"),
            (["--sysctl", "kernel.hostname=x"], "not a namespaced sysctl"), (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], "own network"),
            (["--shm-size", "0"], "--shm-size"), (["--replace"], "--replace needs --name"),
            (["--ulimit", "nofile=999999999:999999999", "--network", "none"], "a hard limit above your own"),
        ] {
            let refused = h.urun(flags + [h.image(), "true"])
            #expect(refused.status == 125 && refused.stderr.contains(expected), "\(flags): \(refused)")
        }

        // --replace: the container of that name goes first; the new one keeps its --ulimit across a restart.
        let root = h.freshRoot()
        #expect(h.urun(["run", "-d", "--name", "web", "--network", "none", h.image(), "sleep", "311"], root: root).status == 0)
        let taken = h.urun(["run", "-d", "--name", "web", "--network", "none", h.image(), "sleep", "311"], root: root)
        #expect(taken.status == 125 && taken.stderr.contains("already in use"), "\(taken)")
        let replaced = h.urun(["run", "-d", "--replace", "--name", "web", "--network", "none", "--ulimit", "nofile=100", h.image(), "sleep", "312"], root: root)
        #expect(replaced.status == 0, "\(replaced)")
        #expect(h.urun(["ps", "-a", "-q"], root: root).lines.count == 1)
        #expect(Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 311'").status != 0, "the replaced container is gone")
        #expect(h.urun(["stop", "-t", "1", "web"], root: root).status == 0)
        #expect(h.urun(["start", "web"], root: root).status == 0)
        let limits = h.urun(["exec", "web", "grep", "open files", "/proc/1/limits"], root: root)
        #expect(limits.stdout.contains(" 100 "), "\(limits)")
        #expect(h.urun(["rm", "-f", "web"], root: root).status == 0)
    }

    /// --domainname, --oom-score-adj, --cgroupns host, --label-file,
    /// --expose, -q; their bad values in one line.
    @Test func moreDockerRunFlags() throws {
        let r = h.urun(["--network", "none", "--domainname", "example.test", "--oom-score-adj", "500", h.image(), "sh", "-c",
                        "cat /proc/sys/kernel/domainname /proc/self/oom_score_adj"])
        #expect(r.lines == ["example.test", "500"], "\(r)")
        let hostCgroup = Harness.sh("readlink /proc/self/ns/cgroup").text
        let own = h.urun(["--network", "none", h.image(), "readlink", "/proc/self/ns/cgroup"])
        let shared = h.urun(["--network", "none", "--cgroupns", "host", h.image(), "sh", "-c", "readlink /proc/self/ns/cgroup; touch /sys/fs/cgroup/x 2>&1 | grep -c Read-only"])
        #expect(own.status == 0 && own.text != hostCgroup, "\(own)")
        #expect(shared.lines == [hostCgroup, "1"], "the host's cgroup tree, read-only: \(shared)")

        let root = h.freshRoot()
        let labels = root + "-labels"
        h.runAsUser(["sh", "-c", "printf '# labels\\nteam=core\\n\\nowner=ci\\n' > \(labels)"])
        let run = h.urun(["run", "-d", "-q", "--name", "l", "--label-file", labels, "-l", "team=edge", "--expose", "8080", "--expose", "9000-9001/udp",
                          h.image(), "sleep", "60"], root: root)
        #expect(run.status == 0 && run.stderr.isEmpty, "\(run)")
        let inspected = h.urun(["inspect", "-f", "{{.Config.Labels}} {{.Config.ExposedPorts}}", "l"], root: root)
        #expect(inspected.text == #"{"owner":"ci","team":"edge"} {"8080/tcp":{},"9000/udp":{},"9001/udp":{}}"#, "\(inspected)")
        #expect(h.urun(["rm", "-f", "l"], root: root).status == 0)

        for bad in [["--oom-score-adj", "-5"], ["--oom-score-adj", "2000"], ["--domainname", "a b"], ["--expose", "70000"],
                    ["--expose", "80/sctp"], ["--cgroupns", "other"], ["--cpu-period", "10"], ["--cpus", "1", "--cpu-quota", "5000"],
                    ["--uts", "host", "--domainname", "x"], ["--label-file", "/nonexistent"]] {
            let refused = h.urun(["--network", "none"] + bad + [h.image(), "true"], root: root)
            #expect(refused.status == 125 && refused.stderr.split(separator: "\n").count <= 2, "\(bad): \(refused)")
        }
    }

    /// --device: a host node the user may open appears at its path or a new
    /// one; one the user may not open, a non-device, a bad form are refused.
    @Test func devices() {
        let r = h.urun(["--network", "none", "--device", "/dev/zero:/dev/myzero:r", "--device", "/dev/full", h.image(), "sh", "-c",
                        "head -c 4 /dev/myzero | od -An -tx1; echo x > /dev/full || echo full; stat -c '%t:%T' /dev/myzero"])
        #expect(r.lines.map { $0.trimmingCharacters(in: .whitespaces) } == ["00 00 00 00", "full", "1:5"], "\(r)")
        // A node only root may open (mode 0600 here), bound by nobody.
        let secret = h.freshRoot() + "-dev"
        Harness.sh("mkdir -p \(secret) && mknod -m 0600 \(secret)/null c 1 3 && chmod 755 \(secret)")
        for (bad, says) in [(secret + "/null", "may not open"), ("/etc/passwd", "not a device"), ("/dev/nonexistent", "no such device"), ("dev/null", "expected HOST")] {
            let refused = h.urun(["--network", "none", "--device", bad, h.image(), "true"])
            #expect(refused.status == 125 && refused.stderr.contains(says), "\(bad): \(refused)")
        }
    }

    /// --group-add: gids and the image's group names join the user's groups
    /// (exec too); keep-groups keeps the caller's own, unmapped ones shown as
    /// nogroup; with only the caller's id mapped no group can be added.
    @Test func groupAdd() throws {
        try require(h.subordinateRange != nil, "supplementary groups need subordinate ids for the test user")
        let root = h.freshRoot()
        let r = h.urun(["--network", "none", "--group-add", "staff", "--group-add", "1234", "-u", "app", h.image(), "id", "-G"], root: root)
        #expect(r.text == "1000 50 1234", "\(r)")
        #expect(h.urun(["run", "-d", "--name", "g", "--group-add", "1234", h.image(), "sleep", "60"], root: root).status == 0)
        #expect(h.urun(["exec", "g", "id", "-G"], root: root).text.split(separator: " ").contains("1234"))
        #expect(h.urun(["rm", "-f", "g"], root: root).status == 0)
        // The caller with one more group, 100, which the container does not map.
        let user = h.user.map { "setpriv --reuid=\($0.uid) --regid=\($0.gid) --groups=\($0.gid),100 --reset-env " } ?? ""
        func groups(_ flags: String) -> Outcome {
            Harness.sh("\(user)env -i PATH=/usr/bin:/bin URUN_ROOT=\(root) \(h.binary) --network none \(flags) \(h.image()) sh -c 'grep ^Groups: /proc/self/status'")
        }
        let kept = groups("--group-add keep-groups")
        #expect(kept.status == 0 && kept.text.split(separator: "\t").last?.split(separator: " ").contains("65534") == true, "\(kept)")
        let dropped = groups("")
        #expect(dropped.status == 0 && !dropped.text.contains("65534"), "\(dropped)")
        for bad in [["--group-add", "nosuch"], ["--group-add", "keep-groups", "--group-add", "5"], ["--userns", "single", "--group-add", "5"]] {
            let refused = h.urun(["--network", "none"] + bad + [h.image(), "true"], root: root)
            #expect(refused.status == 125 && refused.stderr.split(separator: "\n").count <= 2, "\(bad): \(refused)")
        }
    }

    /// --userns keep-id (podman's): the caller's uid and gid are the same
    /// numbers inside, so what a build writes into a bind-mounted tree is the
    /// caller's on the host, and the caller can delete it.
    @Test func keepIDMakesTheFilesYours() throws {
        try require(h.subordinateRange != nil, "keep-id needs subordinate ids for the test user")
        let tree = h.freshRoot() + "/tree"
        h.runAsUser(["mkdir", "-p", tree])
        let uid = String(h.uid)
        let build = h.urun(["--network", "none", "--userns", "keep-id", "-v", tree + ":/src", "-w", "/src", h.image(), "sh", "-c",
            "id -u; id -g; id -un; echo $HOME; stat -c %u /bin; mkdir -p out/obj && echo 'int main(){}' > main.c && cp main.c out/obj/main.o && echo built > out/app"])
        let user = h.user?.name ?? Harness.sh("id -un").text
        #expect(build.lines == [uid, String(h.user?.gid ?? getgid()), user, "/home/" + user, "0"], "\(build)")
        let owners = h.runAsUser(["sh", "-c", "find \(tree) -mindepth 1 -printf '%U:%G\\n' | sort -u"])
        #expect(owners.lines == ["\(uid):\(h.user?.gid ?? getgid())"], "every output is the caller's: \(owners)")
        #expect(h.runAsUser(["rm", "-rf", tree + "/out", tree + "/main.c"]).status == 0, "the caller deletes the outputs")

        // A real C build: the host's gcc (its /usr bound read-only) compiles in
        // the bind-mounted tree; objects, binary and directories are the caller's.
        try require(access("/usr/bin/gcc", X_OK) == 0, "gcc is not installed (apt-get install gcc libc6-dev)")
        h.runAsUser(["sh", "-c", "printf '#include <stdio.h>\\nint main(void) { puts(\"built by gcc\"); return 0; }\\n' > \(tree)/hello.c"])
        let gcc = h.urun(["--network", "none", "--userns", "keep-id", "-v", "/usr:/usr:ro", "-v", "/lib64:/lib64:ro",
                          "-v", "/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro", "-v", tree + ":/src", "-w", "/src", h.image(),
                          "/bin/sh", "-c", "mkdir -p build/obj && gcc -c -o build/obj/hello.o hello.c && gcc -o build/hello build/obj/hello.o && ./build/hello"])
        #expect(gcc.status == 0 && gcc.text == "built by gcc", "\(gcc)")
        let built = h.runAsUser(["sh", "-c", "find \(tree)/build -printf '%U:%G %y\\n' | sort | uniq -c | awk '{print $2, $3, $1}'"])
        let ids = "\(uid):\(h.user?.gid ?? getgid())"
        #expect(built.lines == ["\(ids) d 2", "\(ids) f 2"], "build/, obj/, hello.o and hello are the caller's: \(built)")
        #expect(h.runAsUser(["\(tree)/build/hello"]).text == "built by gcc", "the binary runs on the host")
        #expect(h.runAsUser(["rm", "-r", tree + "/build", tree + "/hello.c"]).status == 0, "the caller deletes the build")

        let chosen = h.urun(["--network", "none", "--userns", "keep-id:uid=1000,gid=1000", "-v", tree + ":/src", h.image(), "sh", "-c", "id -u; touch /src/mine"])
        #expect(chosen.text == "1000", "\(chosen)")
        #expect(h.runAsUser(["stat", "-c", "%u", tree + "/mine"]).text == uid)
        let root = h.urun(["--network", "none", "--userns", "keep-id", "-u", "0", h.image(), "sh", "-c", "id -u; touch /x; stat -c %u /x"])
        #expect(root.lines == ["0", "0"], "\(root)")
        // The cache keep-id's unpacker wrote (as a subordinate id) serves the other mappings too.
        let fresh = h.freshRoot()
        for mode in ["keep-id", "single", "subids", "keep-id"] {
            let r = h.urun(["--network", "none", "--userns", mode, h.image(), "true"], root: fresh)
            #expect(r.status == 0, "--userns \(mode) after the others: \(r)")
        }
        let bad = h.urun(["--userns", "keep-id:uid=abc", h.image(), "true"])
        #expect(bad.status == 125 && bad.stderr.contains("keep-id[:uid=N,gid=N]"), "\(bad)")

        // A kept container: exec runs as the kept user too, across a restart.
        let r = h.freshRoot()
        #expect(h.urun(["run", "-d", "--name", "kept", "--userns", "keep-id", h.image(), "sleep", "313"], root: r).status == 0)
        #expect(h.urun(["exec", "kept", "id", "-u"], root: r).text == uid)
        #expect(h.urun(["stop", "-t", "1", "kept"], root: r).status == 0)
        #expect(h.urun(["start", "kept"], root: r).status == 0)
        #expect(h.urun(["exec", "kept", "id", "-u"], root: r).text == uid)
        #expect(h.urun(["rm", "-f", "kept"], root: r).status == 0)
    }

    /// `urun unshare`, podman's: a container's user 1000 leaves files the
    /// caller cannot delete on the host; inside the caller's map it can.
    @Test func unshareReachesWhatContainersLeft() throws {
        try require(h.subordinateRange != nil, "urun unshare needs subordinate ids for the test user")
        let tree = h.freshRoot() + "/left"
        h.runAsUser(["mkdir", "-p", tree])
        let made = h.urun(["--network", "none", "-v", tree + ":/out", h.image(), "sh", "-c", "mkdir /out/d && echo x > /out/d/f && chown -R 1000:1000 /out/d && chmod 700 /out/d"])
        #expect(made.status == 0, "\(made)")
        #expect(h.runAsUser(["rm", "-rf", tree + "/d"]).status != 0, "a subordinate id's files are not the caller's to remove")
        #expect(h.urun(["unshare", "stat", "-c", "%u", tree + "/d"]).text == "1000")
        #expect(h.urun(["unshare", "id", "-u"]).text == "0")
        #expect(h.urun(["unshare", "rm", "-rf", tree + "/d"]).status == 0)
        #expect(access(tree + "/d", F_OK) != 0)
        #expect(h.urun(["unshare", "sh", "-c", "exit 7"]).status == 7)
        #expect(h.urun(["unshare", "no-such-command"]).status == 127)
    }

    /// Named volumes: a file kept across two runs, made on first use, listed,
    /// inspected, refused while a container uses it, and pruned only when unused.
    @Test func namedVolumesKeepFilesBetweenRuns() throws {
        let r = h.freshRoot()
        let first = h.urun(["--network", "none", "-v", "cache:/cache", h.image(), "sh", "-c", "echo kept > /cache/f; id -u > /cache/who"], root: r)
        #expect(first.status == 0, "\(first)")
        let second = h.urun(["--network", "none", "--mount", "type=volume,src=cache,dst=/data,ro", h.image(), "sh", "-c", "cat /data/f; touch /data/x 2>&1 | grep -c Read-only"], root: r)
        #expect(second.lines == ["kept", "1"], "\(second)")
        #expect(h.urun(["volume", "create", "spare"], root: r).text == "spare")
        #expect(h.urun(["volume", "ls", "-q"], root: r).lines == ["cache", "spare"])
        let inspected = h.urun(["volume", "inspect", "cache"], root: r)
        #expect(inspected.stdout.contains("\"Mountpoint\": \"\(r)/data/volumes/cache/_data\""), "\(inspected)")
        // A kept container holds "cache": rm refuses it, prune leaves it and removes "spare".
        #expect(h.urun(["create", "--name", "holder", "-v", "cache:/cache", h.image(), "true"], root: r).status == 0)
        let refused = h.urun(["volume", "rm", "cache"], root: r)
        #expect(refused.status == 1 && refused.stderr.contains("in use"), "\(refused)")
        let pruned = h.urun(["volume", "prune", "-f"], root: r)
        #expect(pruned.lines == ["Deleted Volumes:", "spare"], "\(pruned)")
        #expect(h.urun(["rm", "holder"], root: r).status == 0)
        #expect(h.urun(["volume", "rm", "cache"], root: r).text == "cache")
        #expect(h.urun(["volume", "ls", "-q"], root: r).text.isEmpty)
        // Bind and tmpfs through --mount; a bad name or type in one line.
        let host = h.freshRoot() + "/bound"
        h.runAsUser(["mkdir", "-p", host])
        let long = h.urun(["--network", "none", "--mount", "type=bind,source=\(host),target=/b", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m", h.image(), "sh", "-c", "touch /b/ok; df -k /t | tail -1 | awk '{print $2}'"], root: r)
        #expect(long.text == "1024" && access(host + "/ok", F_OK) == 0, "\(long)")
        for bad in [["-v", "bad name:/x"], ["--mount", "type=nfs,dst=/x"], ["--mount", "type=volume,dst=/x"]] {
            let refused = h.urun(bad + [h.image(), "true"], root: r)
            #expect(refused.status == 125 && refused.stderr.split(separator: "\n").count <= 2, "\(bad): \(refused)")
        }
    }

    /// docker's rule: a new, empty named volume starts with what the image
    /// has at its target (owners, modes, symlinks, the directory's own owner
    /// and mode); a filled one, nocopy and host paths are left as they are.
    /// --volumes-from binds another container's volumes.
    @Test func namedVolumesStartWithTheImagesContent() throws {
        try require(h.subordinateRange != nil, "the image's owners need subordinate ids for the test user")
        let r = h.freshRoot()
        let made = h.urun(["run", "--name", "base", "--network", "none", h.image(), "sh", "-c",
                           "mkdir /data && echo seed > /data/seed && chmod 600 /data/seed && ln -s seed /data/link && chown -R 1000:1000 /data && chmod 750 /data"], root: r)
        #expect(made.status == 0, "\(made)")
        #expect(h.urun(["commit", "base", "seeded"], root: r).status == 0)
        let list = "ls -ln /data | tail -n +2 | awk '{print $1, $3, $4, $NF}'; stat -c '%a %u:%g' /data"
        let first = h.urun(["--network", "none", "-v", "vol:/data", "seeded", "sh", "-c", list + "; echo mine > /data/mine"], root: r)
        #expect(first.lines == ["lrwxrwxrwx 1000 1000 seed", "-rw------- 1000 1000 seed", "750 1000:1000"], "\(first)")
        // Filled now: nothing is copied over what the volume holds.
        #expect(h.urun(["--network", "none", "-u", "1000", "-v", "vol:/data", "seeded", "sh", "-c", "rm /data/seed; ls /data"], root: r).lines == ["link", "mine"])
        #expect(h.urun(["--network", "none", "-v", "vol:/data", "seeded", "ls", "/data"], root: r).lines == ["link", "mine"])
        let nocopy = h.urun(["--network", "none", "-v", "empty:/data:nocopy", "seeded", "ls", "-A", "/data"], root: r)
        #expect(nocopy.status == 0 && nocopy.text.isEmpty, "\(nocopy)")
        let mounted = h.urun(["--network", "none", "--mount", "type=volume,src=empty2,dst=/data,volume-nocopy=true", "seeded", "ls", "-A", "/data"], root: r)
        #expect(mounted.status == 0 && mounted.text.isEmpty, "\(mounted)")
        let host = h.freshRoot() + "-host"
        h.runAsUser(["mkdir", "-p", host])
        #expect(h.urun(["--network", "none", "-v", host + ":/data", "seeded", "ls", "-A", "/data"], root: r).text.isEmpty, "a host path is never filled")
        #expect(h.urun(["--network", "none", "-v", host + ":/data:nocopy", "seeded", "true"], root: r).status == 125)

        // --volumes-from: the same volume and host path, read-only with :ro.
        #expect(h.urun(["create", "--name", "owner", "-v", "vol:/data", "-v", host + ":/host", h.image(), "true"], root: r).status == 0)
        let shared = h.urun(["--network", "none", "--volumes-from", "owner:ro", h.image(), "sh", "-c",
                             "cat /data/mine; ls -A /host; touch /data/x 2>&1 | grep -c Read-only"], root: r)
        #expect(shared.lines == ["mine", "1"], "\(shared)")
        let writable = h.urun(["--network", "none", "--volumes-from", "owner", "-v", "other:/data", h.image(), "sh", "-c", "touch /host/w && ls -A /data"], root: r)
        #expect(writable.status == 0 && writable.text.isEmpty && access(host + "/w", F_OK) == 0, "-v wins at the same target: \(writable)")
        let missing = h.urun(["--volumes-from", "nobody", h.image(), "true"], root: r)
        #expect(missing.status == 125 && missing.stderr.contains("nobody"), "\(missing)")
        #expect(h.urun(["rm", "owner"], root: r).status == 0)
    }

    /// `:U` (podman's): the source's tree is chowned, through the user
    /// namespace, to the container's user, so it may write there.
    @Test func volumeUChownsTheSourceToTheContainersUser() throws {
        let range = try #require(h.subordinateRange, "needs subordinate ids for the test user")
        let host = h.freshRoot() + "-u"
        h.runAsUser(["sh", "-c", "mkdir -p \(host)/sub && echo x > \(host)/sub/f && chmod 755 \(host)/sub"])
        let r = h.urun(["--network", "none", "-u", "1000:1000", "-v", host + ":/h:U", h.image(), "sh", "-c", "touch /h/sub/new && stat -c %u:%g /h /h/sub/f"])
        #expect(r.lines == ["1000:1000", "1000:1000"], "\(r)")
        let outside = range.start + 999
        let owners = Harness.sh("find \(host) -printf '%U:%G\\n' | sort -u")
        #expect(owners.lines == ["\(outside):\(outside)"], "every entry belongs to the container user's host id: \(owners)")
        // A tree with an owner the container does not map cannot be chowned: one line.
        let foreign = h.freshRoot() + "-foreign"
        Harness.sh("mkdir -p \(foreign) && chown \(h.uid):0 \(foreign)")
        let refused = h.urun(["--network", "none", "-u", "1000:1000", "-v", foreign + ":/h:U", h.image(), "true"])
        #expect(refused.status == 125 && refused.stderr.contains("does not map"), "\(refused)")
    }

    @Test func workdirIsCreatedAndUsed() {
        let result = h.urun(["-w", "/work/deep", h.image(), "pwd"])
        #expect(result.stdout == "/work/deep\n", "\(result)")
        #expect(h.urun(["-w", "/etc", h.image(), "pwd"]).stdout == "/etc\n")
    }

    @Test func userFromTheImagesPasswd() {
        let app = h.urun(["-u", "app", h.image(), "sh", "-c", "id -u; id -g; echo $HOME"])
        #expect(app.lines == ["1000", "1000", "/home/app"], "\(app)")
        let numeric = h.urun(["-u", "4321:50", h.image(), "sh", "-c", "id -u; id -g; echo $HOME"])
        #expect(numeric.lines == ["4321", "50", "/"], "\(numeric)")
        let group = h.urun(["-u", "app:staff", h.image(), "id", "-g"])
        #expect(group.stdout == "50\n")
        let unknown = h.urun(["-u", "ghost", h.image(), "true"])
        #expect(unknown.status == 125)
        #expect(unknown.stderr.contains("unable to find user ghost"))
        // A non-root user has no capabilities left after exec.
        let caps = h.urun(["-u", "app", h.image(), "sh", "-c", "grep CapEff /proc/self/status"])
        #expect(caps.stdout.contains("0000000000000000"), "\(caps)")
    }

    @Test func volumesBindHostDirectories() throws {
        let dir = h.freshRoot() + "/shared"
        h.runAsUser(["sh", "-c", "mkdir -p \(dir) && echo from-host > \(dir)/in"])
        let rw = h.urun(["-v", "\(dir):/data", h.image(), "sh", "-c", "cat /data/in && echo from-container > /data/out"])
        #expect(rw.stdout == "from-host\n", "\(rw)")
        #expect(try String(contentsOfFile: dir + "/out", encoding: .utf8) == "from-container\n")
        let ro = h.urun(["-v", "\(dir):/data:ro", h.image(), "sh", "-c", "cat /data/in; touch /data/nope"])
        #expect(ro.status != 0)
        #expect(ro.stdout == "from-host\n")
        #expect(ro.stderr.contains("Read-only file system"), "\(ro)")
        #expect(access(dir + "/nope", F_OK) != 0)
        // A single file, onto a path that does not exist in the image.
        let file = h.urun(["-v", "\(dir)/in:/new/place/file", h.image(), "cat", "/new/place/file"])
        #expect(file.stdout == "from-host\n", "\(file)")
    }

    @Test func volumeTargetsResolveInsideTheImage() throws {
        // An image whose /mnt is a symlink to an absolute host path: the
        // volume must land inside the container, never on the host path.
        let base = h.freshRoot()
        let hostTarget = base + "/host-target"
        let image = base + "/evil.tar"
        h.runAsUser([
            "sh", "-c",
            "mkdir -p \(base)/tree \(hostTarget) && tar -C \(base)/tree -xf \(h.image()) && rm -rf \(base)/tree/mnt && ln -s \(hostTarget) \(base)/tree/mnt && tar -C \(base)/tree -cf \(image) .",
        ])
        let source = base + "/source"
        h.runAsUser(["sh", "-c", "mkdir -p \(source) && echo payload > \(source)/f"])
        let result = h.urun(["-v", "\(source):/mnt", image, "sh", "-c", "cat /mnt/f; ls \(hostTarget)"])
        #expect(result.status == 0, "\(result)")
        #expect(result.lines.first == "payload")
        // On the host, the symlink's target stayed empty and unmounted.
        #expect(try FileManager.default.contentsOfDirectory(atPath: hostTarget).isEmpty)
    }

    @Test func tmpfsMounts() {
        let result = h.urun(
            ["--tmpfs", "/scratch:size=1m,mode=1777", h.image(), "sh", "-c",
             "grep ' /scratch ' /proc/mounts; stat -c %a /scratch; echo x > /scratch/f && cat /scratch/f"])
        #expect(result.status == 0, "\(result)")
        #expect(result.lines.first?.contains("tmpfs /scratch tmpfs rw,nosuid,nodev,noexec") == true, "\(result)")
        #expect(result.lines.first?.contains("size=1024k") == true)
        #expect(result.lines.dropFirst().first == "1777")
        #expect(result.lines.last == "x")
        #expect(h.urun(["--tmpfs", "/x:size=huge", h.image(), "true"]).status == 125)
    }

    @Test func readOnlyRoot() {
        let result = h.urun(
            ["--read-only", "--tmpfs", "/tmp", h.image(), "sh", "-c",
             "touch /file 2>&1; echo rc=$?; touch /tmp/ok && echo tmp-ok; echo x > /dev/shm/s && echo shm-ok"])
        #expect(result.stdout.contains("Read-only file system"), "\(result)")
        #expect(result.stdout.contains("rc=1"))
        #expect(result.stdout.contains("tmp-ok"))
        #expect(result.stdout.contains("shm-ok"))
    }

    @Test func networkNoneHasOnlyLoopbackUp() throws {
        let result = h.urun(["--network", "none", h.image(), "sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo ping-ok"])
        #expect(result.status == 0, "\(result)")
        #expect(result.lines.first == "lo")
        #expect(result.lines.contains("ping-ok") || result.stdout.contains("unknown"), "\(result)")
        let none = h.urun(["--network", "none", h.image(), "ls", "/sys/class/net"])
        #expect(none.stdout == "lo\n")
    }

    @Test func hostNetworkSeesTheHostsInterfaces() throws {
        let hostInterfaces = try FileManager.default.contentsOfDirectory(atPath: "/sys/class/net").sorted()
        let result = h.urun(["--network", "host", h.image(), "ls", "/sys/class/net"])
        #expect(result.status == 0, "\(result)")
        #expect(result.lines.sorted() == hostInterfaces)
    }

    @Test func ttyGivesTheContainerItsOwnTerminal() {
        // script(1) gives urun a terminal; urun gives the container a pty of its own devpts.
        let command = "\(h.binary) -t \(h.image()) sh -c 'tty; stty size; echo $TERM'"
        let result = h.runAsUser(
            ["script", "-qec", command, "/dev/null"], environment: ["URUN_ROOT": h.sharedRoot, "COLUMNS": "100", "LINES": "40"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("/dev/pts/0"), "\(result)")
        #expect(result.stdout.contains("xterm"))
        // Without a terminal: no pty, and stdin is passed through.
        let plain = h.urun([h.image(), "tty"])
        #expect(plain.stdout.contains("not a tty"), "\(plain)")
    }

    @Test func ttyRelaysInputAndExitStatus() {
        let command = "printf 'echo typed-$((6*7))\\nexit 3\\n' | \(h.binary) -t \(h.image()) sh"
        let result = h.runAsUser(["script", "-qec", command, "/dev/null"], environment: ["URUN_ROOT": h.sharedRoot])
        #expect(result.stdout.contains("typed-42"), "\(result)")
        #expect(result.status == 3)
    }
}
