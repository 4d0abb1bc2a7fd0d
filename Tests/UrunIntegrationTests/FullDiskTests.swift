import Foundation
import Glibc
import Testing
import UrunTestSupport

/// A runtime directory on a full file system: starting fails loudly, and no
/// container runs that urun cannot see or remove.
@Suite(harnessAvailable, .requiring(getuid() == 0, "a small tmpfs to fill needs root to mount"))
struct FullDiskTests {
    let h = Harness.shared

    /// A 512 KiB tmpfs owned by the test user as XDG_RUNTIME_DIR (where the
    /// state goes); images and data on the ordinary disk.
    final class SmallRuntime {
        let base: String
        let runtime: String
        let environment: [String: String]

        init(_ h: Harness) {
            base = h.freshRoot()
            runtime = base + "/runtime"
            Harness.sh("mkdir -p \(runtime) && mount -t tmpfs -o size=512k,mode=0700,uid=\(h.uid),gid=\(h.user?.gid ?? 0) urun-full \(runtime)")
            environment = ["XDG_RUNTIME_DIR": runtime, "XDG_CACHE_HOME": base + "/cache", "XDG_DATA_HOME": base + "/data"]
        }

        func fill(_ h: Harness) {
            h.runAsUser(["sh", "-c", "dd if=/dev/zero of=\(runtime)/fill bs=4k 2>/dev/null; true"])
        }

        func free(_ h: Harness) { h.runAsUser(["rm", "-f", runtime + "/fill"]) }

        deinit {
            Harness.sh("umount -l \(runtime) 2>/dev/null; rm -rf \(base)")
        }
    }

    func u(_ small: SmallRuntime, _ arguments: [String]) -> Outcome {
        h.runAsUser([h.binary] + arguments, environment: small.environment, timeout: 60)
    }

    func running(_ tag: String) -> Bool { Harness.sh("pgrep -u \(h.uid) -f 'sleep \(tag)'").status == 0 }

    @Test func startingOnAFullDiskFailsAndLeavesNothingRunning() {
        let small = SmallRuntime(h)
        #expect(u(small, ["create", "--network", "none", "--name", "full", h.image(), "sleep", "4441"]).status == 0)
        small.fill(h)
        let start = u(small, ["start", "full"])
        #expect(start.status == 1, "as docker start: \(start)")
        #expect(start.stderr.contains("no space left on device"), "\(start)")
        #expect(!running("4441"), "nothing runs that urun could not record")
        #expect(u(small, ["ps", "-a", "--format", "{{.Status}}"]).text == "Created", "not shown as Up")
        let detached = u(small, ["run", "-d", "--network", "none", "--name", "full2", h.image(), "sleep", "4442"])
        #expect(detached.status == 125, "\(detached)")
        #expect(!running("4442"))
        // rm needs no space (a rename, then removals): it works while the disk is still full.
        let removed = u(small, ["rm", "-f", "full"])
        #expect(removed.status == 0, "\(removed)")
        #expect(u(small, ["ps", "-aq"]).stdout.isEmpty)
        small.free(h)
    }

    @Test func restartingOnAFullDiskStopsAndFailsLoudly() {
        let small = SmallRuntime(h)
        #expect(u(small, ["run", "-d", "--network", "none", "--name", "busy", h.image(), "sleep", "4443"]).status == 0)
        #expect(waitFor { running("4443") })
        small.fill(h)
        let restart = u(small, ["restart", "-t", "1", "busy"])
        #expect(restart.status != 0, "\(restart)")
        #expect(restart.stderr.contains("no space left on device"), "\(restart)")
        #expect(waitFor(5) { !running("4443") }, "the old process is gone and no new one runs")
        let ps = u(small, ["ps", "--format", "{{.Names}}"])
        #expect(ps.text.isEmpty, "not Up: \(ps)")
        let exec = u(small, ["exec", "busy", "true"])
        #expect(exec.status == 125 && exec.stderr.contains("not running"), "\(exec)")
        let inspect = u(small, ["inspect", "-f", "{{.State.Status}}: {{.State.Error}}", "busy"])
        #expect(inspect.text == "exited: the exit status was not recorded: its supervisor was killed, or could not write the state (a full disk)", "\(inspect)")
        #expect(u(small, ["rm", "-f", "busy"]).status == 0)
        #expect(!running("4443"))
        small.free(h)
    }
}

/// urun's own directories are private whatever the umask: an image's setuid
/// files and 1777 directories are never reachable by another user.
@Suite(harnessAvailable) struct PrivateDirectoryTests {
    let h = Harness.shared

    @Test func directoriesArePrivateWhateverTheUmask() {
        let base = h.freshRoot()
        h.runAsUser(["mkdir", "-m", "700", base + "/xdg-run"])
        let environment = ["XDG_CACHE_HOME": base + "/xdg-cache", "XDG_DATA_HOME": base + "/xdg-data", "XDG_RUNTIME_DIR": base + "/xdg-run"]
        let run = h.runAsUser(["sh", "-c", "umask 022 && exec \(h.binary) --network none \(h.image()) true"], environment: environment)
        #expect(run.status == 0, "\(run)")
        for path in [base + "/xdg-cache/urun", base + "/xdg-data/urun", base + "/xdg-run/urun", base + "/xdg-cache/urun/layers"] {
            #expect(Harness.sh("stat -c %a \(path)").text == "700", "\(path)")
        }
        // With --root too, and for another user (nobody) the cache cannot be entered.
        let r = h.freshRoot()
        #expect(h.runAsUser(["sh", "-c", "umask 000 && exec \(h.binary) --root \(r) run --network none \(h.image()) true"]).status == 0)
        for part in ["cache", "data", "run"] { #expect(Harness.sh("stat -c %a \(r)/\(part)").text == "700", "\(part)") }
        let nobody = Harness.sh("setpriv --reuid=65534 --regid=65534 --clear-groups ls \(r)/cache/layers 2>&1")
        #expect(nobody.status != 0 && nobody.stdout.contains("Permission denied"), "\(nobody)")

        // An existing cache that others could enter is made private, saying so once.
        Harness.sh("chmod 755 \(base)/xdg-cache/urun")
        let tightened = h.runAsUser([h.binary, "images"], environment: environment)
        #expect(tightened.stderr.contains("made \(base)/xdg-cache/urun private (it was mode 755"), "\(tightened)")
        #expect(Harness.sh("stat -c %a \(base)/xdg-cache/urun").text == "700")
        #expect(h.runAsUser([h.binary, "images"], environment: environment).stderr.isEmpty, "said once")
    }

    @Test(.requiring(getuid() == 0, "a directory owned by another user needs root to make"))
    func aDirectoryOfAnotherUserIsRefused() {
        let r = h.freshRoot()
        Harness.sh("mkdir -p \(r)/cache && chown 0:0 \(r)/cache && chmod 777 \(r)/cache")
        let refused = h.urun(["--network", "none", h.image(), "true"], root: r)
        #expect(refused.status == 125, "\(refused)")
        #expect(refused.stderr.contains("\(r)/cache belongs to uid 0, not to you"), "\(refused)")
    }
}

/// stdin is the container's to read, no more; a terminal's end of input is
/// its end-of-file character, never a NUL.
@Suite(harnessAvailable) struct StandardInputTests {
    let h = Harness.shared

    func shell(_ script: String) -> Outcome {
        h.runAsUser(["sh", "-c", script], environment: ["URUN_ROOT": h.freshRoot(), "U": h.binary, "IMG": h.image()])
    }

    @Test func aKeptRunTakesOnlyWhatItReads() {
        // Without -i a kept run reads nothing (docker's rule): all five lines are left.
        let kept = shell(#"seq 1 5 | { "$U" run --network none --name x "$IMG" sleep 0.3; cat; }"#)
        #expect(kept.lines == ["1", "2", "3", "4", "5"], "\(kept)")
        // With -i, the container reads one line; the rest is left to the next reader.
        let interactive = shell(#"seq 1 5 | { "$U" run -i --network none --name y "$IMG" sh -c 'read x; echo got $x'; cat; }"#)
        #expect(interactive.lines == ["got 1", "2", "3", "4", "5"], "\(interactive)")
        // An unnamed run passes stdin as running a command does.
        let unnamed = shell(#"seq 1 5 | { "$U" run --network none "$IMG" sh -c 'read x; echo got $x'; cat; }"#)
        #expect(unnamed.lines == ["got 1", "2", "3", "4", "5"], "\(unnamed)")
        let all = shell(#"printf 'a\nb\n' | "$U" run -i --network none --name z "$IMG" cat"#)
        #expect(all.lines == ["a", "b"], "\(all)")
    }

    @Test(.requiring(access("/usr/bin/script", X_OK) == 0, "script(1) (bsdutils) is not installed"))
    func theEndOfATerminalsInputIsNoNUL() {
        for name in [[], ["--name", "tty"]] {
            let flags = name.joined(separator: " ")
            let result = shell("script -qec \"$U run --network none \(flags) $IMG tty\" /dev/null </dev/null")
            #expect(result.status == 0, "\(result)")
            #expect(result.text == "/dev/pts/0", "\(name): \(result.stdout.debugDescription)")
            // And a command that reads gets the end of its input.
            let cat = shell("script -qec \"$U run --network none \(flags) $IMG cat\" /dev/null </dev/null")
            #expect(cat.status == 0 && !cat.stdout.contains("^@") && !cat.stdout.contains("\0"), "\(cat.stdout.debugDescription)")
        }
    }
}
