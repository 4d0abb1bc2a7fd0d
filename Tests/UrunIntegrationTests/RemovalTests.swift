import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Whatever a container or an image holds, and however a removal was
/// interrupted, `rm`, `rmi` and `prune` remove it, and `rm -f` kills what it
/// removes.
@Suite(harnessAvailable) struct RemovalTests {
    let h = Harness.shared

    func u(_ root: String, _ arguments: [String], timeout: Double = 60) -> Outcome {
        h.urun(arguments, root: root, timeout: timeout)
    }

    /// No container's directory, runtime state or process is left.
    func nothingLeft(_ root: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let left = Harness.sh("find \(root)/data/containers \(root)/run/containers -mindepth 1 -maxdepth 1 ! -name '.*' 2>/dev/null")
        #expect(left.stdout.isEmpty, "left: \(left.stdout)", sourceLocation: sourceLocation)
        #expect(Harness.sh("pgrep -f 'monitor.*' -u \(h.uid) -a | grep -F '\(root)'").stdout.isEmpty, sourceLocation: sourceLocation)
        #expect(u(root, ["ps", "-aq"]).stdout.isEmpty, sourceLocation: sourceLocation)
    }

    /// File names are bytes: a name that is not UTF-8, in a container's
    /// writes or in an image's layer, goes with rm, rmi and system prune.
    @Test func namesThatAreNotUTF8AreRemoved() throws {
        let r = h.freshRoot()
        let made = u(r, ["run", "--network", "none", "--name", "bad", h.image(), "sh", "-c",
            #"touch "$(printf '/root/bad\377')"; mkdir "$(printf '/root/d\376')"; touch "$(printf '/root/d\376/x\375')"; ls /root | wc -l"#])
        #expect(made.text == "2", "\(made)")
        #expect(u(r, ["ps", "-a", "--format", "{{.Names}}"]).text == "bad")
        let removed = u(r, ["rm", "bad"])
        #expect(removed.status == 0 && removed.stderr.isEmpty, "\(removed)")
        nothingLeft(r)

        // The same names in an image's layer: unpacked, run, and removed with the image.
        var tar = TarWriter()
        tar.add(name: Array("bad".utf8) + [0xFF], bytes: Array("x".utf8))
        tar.add(name: Array("dir".utf8) + [0xFE, 0x2F], .directory, mode: 0o755)
        tar.add(name: Array("dir".utf8) + [0xFE, 0x2F, 0x79, 0xFD], bytes: Array("y".utf8))
        var builder = ImageArchiveBuilder()
        builder.layers = [Array(try Data(contentsOf: URL(fileURLWithPath: h.image()))), tar.archive]
        builder.tags = ["names:1"]
        let archive = r + "/names.tar"
        FileManager.default.createFile(atPath: archive, contents: Data(builder.dockerSave()))
        Harness.sh("chmod 644 \(archive)")
        let listed = u(r, ["run", "--network", "none", archive, "sh", "-c", "ls / | grep -c -e '^bad' -e '^dir'"])
        #expect(listed.text == "2", "\(listed)")
        let namesLayer = ImageArchiveBuilder.sha256(tar.archive)
        #expect(!Harness.sh("ls \(r)/cache/layers/ | grep \(namesLayer)").stdout.isEmpty, "the layer is in the cache")
        #expect(u(r, ["rmi", "names:1"]).status == 0)
        #expect(Harness.sh("ls \(r)/cache/layers/ | grep \(namesLayer)").stdout.isEmpty, "the layer went with the image")
        #expect(Harness.sh("ls -A \(r)/cache/tmp").stdout.isEmpty)
        // And a second run of it does not leak a copy into cache/tmp.
        #expect(u(r, ["run", "--network", "none", archive, "true"]).status == 0)
        #expect(u(r, ["run", "--network", "none", archive, "true"]).status == 0)
        #expect(Harness.sh("ls -A \(r)/cache/tmp").stdout.isEmpty)
        #expect(u(r, ["system", "prune", "-a", "-f"]).status == 0)
        #expect(Harness.sh("ls -A \(r)/cache/images").stdout.isEmpty)
    }

    /// A container that made a tree 10,000 directories deep (a path of
    /// 20 KB): removed with 64 descriptors at most.
    @Test func aTreeDeeperThanAnyDescriptorLimitIsRemoved() {
        let r = h.freshRoot()
        let script = "cd /root && mkdir d && i=0 && while [ $i -lt 10000 ]; do mkdir t && mv d t/ && mv t d || exit 1; i=$((i+1)); done"
        let made = u(r, ["run", "--network", "none", "--name", "deep", h.image(), "sh", "-c", script], timeout: 300)
        #expect(made.status == 0, "\(made)")
        let removed = h.runAsUser(["prlimit", "--nofile=64:64", h.binary, "rm", "deep"], environment: ["URUN_ROOT": r], timeout: 120)
        #expect(removed.status == 0, "\(removed)")
        #expect(removed.stderr.utf8.count < 500, "no 20 KB path in a message: \(removed.stderr.prefix(300))")
        nothingLeft(r)
    }

    /// What a SIGKILLed rm leaves behind: the container marked as being
    /// removed, part of its files gone. `ps -a` shows it, nothing starts it,
    /// and the next rm finishes it.
    @Test func anInterruptedRemovalIsFinishedAndNothingStartsIt() {
        let r = h.freshRoot()
        #expect(u(r, ["run", "--network", "none", "--name", "half", h.image(), "sh", "-c", "mkdir /root/many && touch /root/many/f1 /root/many/f2"]).status == 0)
        let directory = Harness.sh("ls -d \(r)/data/containers/*/").text
        h.runAsUser(["sh", "-c", "mv \(directory)config.json \(directory)removing.json && rm \(directory)upper/root/many/f1"])
        #expect(u(r, ["ps", "-a", "--format", "{{.Names}} {{.Status}}"]).text == "half Removal In Progress")
        let start = u(r, ["start", "half"])
        #expect(start.status != 0 && start.stderr.contains("is being removed"), "\(start)")
        #expect(u(r, ["rm", "half"]).status == 0)
        nothingLeft(r)

        // A real SIGKILL at some point of a removal, a few times over: whatever
        // it left, the container is gone or shown as being removed, cannot be
        // started, and the next rm finishes it.
        for round in 0..<4 {
            let name = "k\(round)"
            let script = "mkdir /root/m && cd /root/m && i=0 && while [ $i -lt 3000 ]; do echo $i > f$i; i=$((i+1)); done"
            #expect(u(r, ["run", "--network", "none", "--name", name, h.image(), "sh", "-c", script], timeout: 120).status == 0)
            let rm = h.start([h.binary, "rm", name], environment: ["URUN_ROOT": r])
            usleep(UInt32(round * 15_000 + 5_000))
            kill(rm.processIdentifier, SIGKILL)
            rm.waitUntilExit()
            let status = u(r, ["ps", "-a", "--format", "{{.Names}} {{.Status}}"]).text
            #expect(status.isEmpty || status == "\(name) Removal In Progress" || status.hasPrefix("\(name) Exited"), "round \(round): \(status)")
            if !status.isEmpty {
                #expect(status.hasPrefix("\(name) Exited") || u(r, ["start", name]).status != 0, "round \(round): a half-removed container started")
                let again = u(r, ["rm", "-f", name])
                #expect(again.status == 0, "round \(round): \(again)")
            }
            nothingLeft(r)
        }
    }

    /// rm -f racing start and restart: it wins, without ENOTEMPTY or ENOENT,
    /// and nothing of the container outlives it.
    @Test func rmForceRacingStartAndRestart() {
        let r = h.freshRoot()
        for round in 0..<5 {
            let name = "race\(round)"
            #expect(u(r, ["create", "--network", "none", "--name", name, h.image(), "sleep", "1000"]).status == 0)
            let starter = h.start([h.binary, round % 2 == 0 ? "start" : "restart", name], environment: ["URUN_ROOT": r])
            usleep(UInt32(round * 10_000))
            let removed = u(r, ["rm", "-f", name])
            #expect(removed.status == 0, "round \(round): \(removed)")
            #expect(!removed.stderr.contains("ENOTEMPTY") && !removed.stderr.contains("ENOENT"), "round \(round): \(removed)")
            starter.waitUntilExit()
            #expect(waitFor(10) { Harness.sh("pgrep -u \(h.uid) -f 'sleep 1000'").status != 0 }, "round \(round): the container outlived rm -f")
            nothingLeft(r)
        }
    }

    /// rm -f kills the container whatever its state file says: here the
    /// record of PID 1 was lost (as a full disk could lose it), the supervisor's was not.
    @Test func rmForceKillsWhatItsStateNoLongerNames() {
        let r = h.freshRoot()
        #expect(u(r, ["run", "-d", "--network", "none", "--name", "lost", h.image(), "sleep", "2222"]).status == 0)
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -f 'sleep 2222'").status == 0 })
        let state = Harness.sh("ls \(r)/run/containers/*/state.json").text
        h.runAsUser(["sh", "-c", "sed -i -e 's/\"pid\":[0-9]*/\"pid\":0/' -e 's/\"status\":\"running\"/\"status\":\"created\"/' \(state)"])
        #expect(u(r, ["ps", "-a", "--format", "{{.Status}}"]).text == "Created", "the state no longer says it runs")
        let removed = u(r, ["rm", "-f", "lost"])
        #expect(removed.status == 0, "\(removed)")
        #expect(waitFor(10) { Harness.sh("pgrep -u \(h.uid) -f 'sleep 2222'").status != 0 }, "the container outlived rm -f")
        nothingLeft(r)
    }

    /// A container whose supervisor dies dies with it, even when its command
    /// runs as another user (a change of credentials clears PR_SET_PDEATHSIG:
    /// urun sets it again).
    @Test(.requiring(Harness.shared.subordinateRange != nil, "the test user has no subordinate ids (useradd gives them; uidmap must be installed)"))
    func aContainerDiesWithItsSupervisorWhateverItsUser() {
        let r = h.freshRoot()
        #expect(u(r, ["run", "-d", "--network", "none", "--name", "orphan", "-u", "1000", h.image(), "sleep", "3333"]).status == 0)
        #expect(waitFor { Harness.sh("pgrep -x -f 'sleep 3333'").status == 0 })
        let monitor = Harness.sh("grep -o '\"monitorPid\":[0-9]*' \(r)/run/containers/*/state.json | cut -d: -f2").text
        #expect(Int32(monitor) != nil, "the supervisor is on record")
        Harness.sh("kill -9 \(monitor)")
        #expect(waitFor(10) { Harness.sh("pgrep -x -f 'sleep 3333'").status != 0 }, "the container outlived its supervisor")
        #expect(u(r, ["ps", "-a", "--format", "{{.Names}} {{.Status}}"]).text == "orphan Exited (unknown) Less than a second ago" || u(r, ["ps", "-aq"]).lines.count == 1)
        #expect(u(r, ["rm", "orphan"]).status == 0)
        nothingLeft(r)
    }
}
