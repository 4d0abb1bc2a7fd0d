import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Images and files out of urun again, as the unprivileged test user:
/// commit, export and import, cp both ways (a symlink in the container never
/// leads out of it), save and load (read back by skopeo and podman), tag.
@Suite(harnessAvailable)
struct ImageRoundTripTests {
    let h = Harness.shared

    func u(_ root: String, _ arguments: [String], stdin: String? = nil, cgroup: String? = nil) -> Outcome {
        h.urun(arguments, stdin: stdin, root: root, cgroup: cgroup)
    }

    @Test func commitKeepsAdditionsDeletionsOwnersAndChanges() throws {
        let r = h.freshRoot()
        let made = u(r, ["run", "--name", "builder", "--network", "none", h.image(), "sh", "-c", """
            echo built > /built; rm /etc/profile; rm -rf /usr/sbin; mkdir -p /usr/sbin; echo only > /usr/sbin/only
            mkdir /data; echo mine > /data/f; chown -R 1000:1001 /data; chmod 640 /data/f; ln -s /built /link
            """])
        #expect(made.status == 0, "\(made)")
        let committed = u(r, ["commit", "-q", "-m", "a message", "-c", "ENV STAGE=two", "-c", "LABEL team=infra", "-c", #"CMD ["cat", "/built"]"#, "builder", "built:1"])
        #expect(committed.status == 0 && committed.text.count == 64, "\(committed)")

        let ran = u(r, ["run", "--rm", "--network", "none", "built:1"])
        #expect(ran.status == 0 && ran.text == "built", "CMD from --change: \(ran)")
        let inside = u(r, ["run", "--rm", "--network", "none", "built:1", "sh", "-c",
            "echo $STAGE; ls /etc/profile 2>&1; ls /usr/sbin; stat -c '%u:%g %a' /data/f; readlink /link"])
        let expected = ["two", "ls: /etc/profile: No such file or directory", "only", "1000:1001 640", "/built"]
        if h.subordinateRange != nil {
            #expect(inside.lines == expected, "\(inside)")
        } else {
            // One id mapped: chown to 1000 fails in the container; the rest holds.
            #expect(Array(inside.lines.prefix(3)) == Array(expected.prefix(3)), "\(inside)")
        }
        // The configuration and history as written: read back through save.
        let archive = r + "/built.tar"
        #expect(u(r, ["save", "-o", archive, "built:1"]).status == 0)
        let config = Harness.sh("cd \(r) && tar -xOf built.tar manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"Config\"])' | xargs tar -xOf built.tar").stdout
        #expect(config.contains("\"team\":\"infra\"") && config.contains("a message") && config.contains("STAGE=two"), "\(config)")
        // A bad --change fails before anything is written.
        let bad = u(r, ["commit", "-c", "RUN make", "builder", "x:1"])
        #expect(bad.status == 125 && bad.stderr.contains("RUN make"), "\(bad)")
        #expect(u(r, ["rm", "builder"]).status == 0)
    }

    /// What docker users read back: image inspect, inspect's Config (the
    /// image's Env, Entrypoint, ExposedPorts and Labels below the container's
    /// own), --label, and a PORTS column in ps.
    @Test func inspectShowsWhatDockerShows() throws {
        let r = h.freshRoot()
        #expect(u(r, ["run", "--name", "base", "--network", "none", h.image(), "true"]).status == 0)
        let changes = ["-c", "ENV FROM_IMAGE=yes", "-c", "LABEL layer=base", "-c", "EXPOSE 8080", "-c", #"ENTRYPOINT ["/bin/sh", "-c"]"#]
        #expect(u(r, ["commit", "-q"] + changes + ["base", "svc:1"]).status == 0)
        let image = u(r, ["image", "inspect", "svc:1"])
        #expect(image.status == 0 && image.stdout.contains("\"docker.io/library/svc:1\"") && image.stdout.contains("\"8080/tcp\"")
            && image.stdout.contains("\"Type\": \"layers\""), "\(image)")
        #expect(u(r, ["image", "inspect", "-f", "{{.Config.Labels.layer}}", "svc:1"]).text == "base")
        #expect(u(r, ["run", "-d", "--name", "svc", "--network", "none", "--label", "team=infra", "-e", "OWN=1", "svc:1", "sleep 317"]).status == 0)
        let field = { (path: String) in self.u(r, ["inspect", "-f", "{{" + path + "}}", "svc"]).text }
        #expect(field(".Config.Labels.team") == "infra" && field(".Config.Labels.layer") == "base")
        #expect(field(".Config.Image") == "svc:1")
        let inspected = u(r, ["inspect", "svc"]).stdout
        #expect(inspected.contains("\"FROM_IMAGE=yes\"") && inspected.contains("\"OWN=1\"") && inspected.contains("\"8080/tcp\"")
            && inspected.contains("\"Entrypoint\": [\n"), "\(inspected)")
        let ps = u(r, ["ps"])
        #expect(ps.lines.first?.contains("PORTS") == true && ps.stdout.contains("svc"), "\(ps)")
        #expect(u(r, ["rm", "-f", "svc", "base"]).status == 0)
        let bad = u(r, ["run", "--label", "=x", h.image(), "true"])
        #expect(bad.status == 125, "\(bad)")
    }

    @Test(.requiring(DelegatedCgroup.forLifecycle != nil, DelegatedCgroup.skipReason))
    func commitOfAPausedContainer() throws {
        let r = h.freshRoot()
        let d = DelegatedCgroup.forLifecycle!
        #expect(u(r, ["run", "-d", "--name", "held", "--network", "none", h.image(), "sh", "-c", "echo live > /state; sleep 300"], cgroup: d.path).status == 0)
        #expect(waitFor { u(r, ["exec", "held", "cat", "/state"], cgroup: d.path).text == "live" })
        #expect(u(r, ["pause", "held"], cgroup: d.path).status == 0)
        let committed = u(r, ["commit", "held", "held:1"], cgroup: d.path)
        #expect(committed.status == 0, "\(committed)")
        #expect(u(r, ["ps", "--format", "{{.Status}}"]).stdout.contains("(Paused)"), "a paused container stays paused")
        #expect(u(r, ["unpause", "held"], cgroup: d.path).status == 0)
        #expect(u(r, ["rm", "-f", "held"]).status == 0)
        #expect(u(r, ["run", "--rm", "--network", "none", "held:1", "cat", "/state"]).text == "live")
    }

    @Test func exportThenImport() throws {
        let r = h.freshRoot()
        #expect(u(r, ["run", "-d", "--name", "live", "--network", "none", h.image(), "sh", "-c", "echo exported > /marker; sleep 300"]).status == 0)
        #expect(waitFor { u(r, ["exec", "live", "cat", "/marker"]).text == "exported" })
        let tar = r + "/live.tar"
        let exported = u(r, ["export", "-o", tar, "live"])
        #expect(exported.status == 0, "\(exported)")
        let names = Harness.sh("tar -tf \(tar)").lines
        #expect(names.contains("marker") && names.contains("proc/") && !names.contains { $0.hasPrefix("proc/self") }, "\(names.prefix(20))")
        let imported = u(r, ["import", "-q", tar, "snapshot:1"])
        #expect(imported.status == 0, "\(imported)")
        #expect(u(r, ["run", "--rm", "--network", "none", "snapshot:1", "cat", "/marker"]).text == "exported")
        #expect(u(r, ["rm", "-f", "live"]).status == 0)
        // Stopped too, and to stdout.
        #expect(u(r, ["run", "--name", "done", "--network", "none", h.image(), "touch", "/stopped"]).status == 0)
        let piped = h.runAsUser(["sh", "-c", "'\(h.binary)' export done | tar -t | grep -x stopped"], environment: ["URUN_ROOT": r])
        #expect(piped.text == "stopped", "\(piped)")
        let tty = u(r, ["export", "nosuch"])
        #expect(tty.status == 125, "\(tty)")
    }

    @Test func copyBothWaysStaysInsideTheContainer() throws {
        let r = h.freshRoot()
        let host = r + "/host"
        h.runAsUser(["sh", "-c", "mkdir -p \(host)/tree/sub && echo one > \(host)/file.txt && echo two > \(host)/tree/sub/two"])
        for running in [true, false] {
            let name = running ? "running" : "stopped"
            let setup = "ln -s /etc /escape; ln -s ../../../../etc /relative; echo inside > /etc/marker"
            if running {
                #expect(u(r, ["run", "-d", "--name", name, "--network", "none", h.image(), "sh", "-c", setup + "; sleep 300"]).status == 0)
                #expect(waitFor { u(r, ["exec", name, "cat", "/etc/marker"]).text == "inside" })
            } else {
                #expect(u(r, ["run", "--name", name, "--network", "none", h.image(), "sh", "-c", setup]).status == 0)
            }
            // In: a file into a directory, a tree under a new name, and through symlinks that point out.
            #expect(u(r, ["cp", host + "/file.txt", name + ":/tmp"]).status == 0)
            #expect(u(r, ["cp", host + "/tree", name + ":/copied"]).status == 0)
            let absolute = u(r, ["cp", host + "/file.txt", name + ":/escape/planted-\(name)"])
            let relative = u(r, ["cp", host + "/file.txt", name + ":/relative/planted2-\(name)"])
            #expect(absolute.status == 0 && relative.status == 0, "\(absolute) \(relative)")
            #expect(access("/etc/planted-\(name)", F_OK) != 0 && access("/etc/planted2-\(name)", F_OK) != 0, "nothing lands in the host's /etc")
            // Out: the container's /etc/marker, through the same symlinks, never the host's.
            #expect(u(r, ["cp", name + ":/escape/marker", host + "/marker-\(name)"]).status == 0)
            #expect(h.runAsUser(["cat", host + "/marker-\(name)"]).text == "inside")
            #expect(u(r, ["cp", name + ":/copied", host + "/back-\(name)"]).status == 0)
            #expect(h.runAsUser(["cat", host + "/back-\(name)/sub/two"]).text == "two")
            let owner = h.runAsUser(["stat", "-c", "%u", host + "/back-\(name)/sub/two"]).text
            #expect(owner == String(h.uid), "files come out as the caller's: \(owner)")
            let check = running
                ? u(r, ["exec", name, "sh", "-c", "cat /tmp/file.txt /copied/sub/two /etc/planted-\(name) /etc/planted2-\(name); stat -c %u /tmp/file.txt"])
                : u(r, ["start", "-a", name])
            if running {
                #expect(check.lines == ["one", "two", "one", "one", "0"], "\(check)")
            }
            #expect(u(r, ["cp", name + ":/nosuch", host]).status == 125)
            #expect(u(r, ["rm", "-f", name]).status == 0)
        }
        let both = u(r, ["cp", "a:/x", "b:/y"])
        #expect(both.status == 125, "\(both)")
    }

    @Test func saveLoadAndTheRealTools() throws {
        let r = h.freshRoot()
        let id = u(r, ["import", "-q", h.image("busybox.tar.gz"), "saved:1"]).text
        #expect(id.count == 64)
        #expect(u(r, ["tag", "saved:1", "127.0.0.1:5000/team/saved:2"]).status == 0)
        let listed = u(r, ["images"]).stdout
        #expect(listed.contains("docker.io/library/saved") && listed.contains("127.0.0.1:5000/team/saved"), "\(listed)")
        for format in ["docker-archive", "oci-archive"] {
            let archive = r + "/saved-\(format).tar"
            let saved = u(r, ["save", "--format", format, "-o", archive, "saved:1"])
            #expect(saved.status == 0, "\(saved)")
            let fresh = h.freshRoot()
            let loaded = u(fresh, ["load", "-i", archive])
            #expect(loaded.status == 0 && loaded.stdout.contains("docker.io/library/saved:1"), "\(loaded)")
            #expect(u(fresh, ["run", "--rm", "--network", "none", "saved:1", "echo", "round trip"]).text == "round trip")
            if getuid() == 0 && Harness.sh("command -v skopeo").status == 0 {
                let read = Harness.sh("skopeo inspect \(format):\(archive) >/dev/null && echo readable")
                #expect(read.text == "readable", "skopeo reads urun's \(format): \(read)")
            }
        }
        // From stdin, as `urun save | urun load`.
        let piped = h.runAsUser(["sh", "-c", "'\(h.binary)' save saved:1 | URUN_ROOT=\(h.freshRoot()) '\(h.binary)' load"], environment: ["URUN_ROOT": r])
        #expect(piped.status == 0 && piped.stdout.contains("Loaded image"), "\(piped)")
        let terminal = u(r, ["save", "nosuch:1"])
        #expect(terminal.status == 125 && terminal.stderr.contains("No such image"), "\(terminal)")
    }
}
