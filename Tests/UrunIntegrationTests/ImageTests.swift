import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Image archives as `docker save` and `podman save --format oci-archive`
/// write them, built here from the busybox rootfs plus a layer that deletes,
/// replaces and owns things; run by an unprivileged user.
@Suite(harnessAvailable) struct ImageTests {
    let h = Harness.shared

    static func tar(_ build: (inout TarWriter) -> Void) -> [UInt8] {
        var tar = TarWriter()
        build(&tar)
        return tar.archive
    }

    /// busybox, then a layer that deletes /etc/motd, replaces /home and adds /srv.
    func builder() throws -> ImageArchiveBuilder {
        var builder = ImageArchiveBuilder()
        builder.layers = [
            Array(try Data(contentsOf: URL(fileURLWithPath: h.image()))),
            Self.tar { t in
                t.add("etc/.wh.motd")
                t.add(".wh.home")
                t.add("home/", .directory, mode: 0o755)
                t.add("home/only", content: "the new home\n")
                t.add("srv/", .directory, mode: 0o755)
                t.add("srv/greeting", content: "owned by 100\n", mode: 0o640, uid: 100, gid: 100)
            },
        ]
        builder.env = ["GREETING=hello from the image", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        builder.cmd = ["sh", "-c", "echo $GREETING; pwd; id -u"]
        builder.workingDir = "/srv"
        builder.user = "1000"
        builder.tags = ["example.org/demo:1.0"]
        return builder
    }

    /// Writes an archive where the test user can read it.
    func write(_ bytes: [UInt8], _ name: String, in root: String) -> String {
        let path = root + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        chmod(path, 0o644)
        return path
    }

    func layers(_ root: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root + "/cache/layers")) ?? []).filter { !$0.hasSuffix(".size") }
    }

    @Test(arguments: ["oci", "docker"])
    func imageArchivesRunWithTheirConfiguration(_ format: String) throws {
        let root = h.freshRoot()
        let builder = try builder()
        let image = write(format == "oci" ? builder.ociArchive() : builder.dockerSave(), "demo-\(format).tar", in: root)
        // Cmd, Env, WorkingDir and User from the image's configuration.
        let plain = h.urun([image], root: root)
        #expect(plain.status == 0, "\(plain)")
        #expect(plain.lines == ["hello from the image", "/srv", "1000"], "\(plain)")
        // The command line wins: a command replaces Cmd, -e overrides Env, -u and -w too.
        let overridden = h.urun(["-e", "GREETING=from -e", "-u", "0", "-w", "/", image, "sh", "-c", "echo $GREETING; pwd; id -u"], root: root)
        #expect(overridden.lines == ["from -e", "/", "0"], "\(overridden)")
        let entrypoint = h.urun(["--entrypoint", "/bin/echo", image, "via", "entrypoint"], root: root)
        #expect(entrypoint.stdout == "via entrypoint\n", "\(entrypoint)")
        // The upper layer's whiteouts and replaced directory, and its owners.
        let files = h.urun(["-u", "0", image, "sh", "-c", "test -e /etc/motd && echo motd-still-there; ls /home; stat -c %u:%g /srv/greeting; cat /etc/hostname >/dev/null && echo base-layer"], root: root)
        let owner = h.subordinateRange != nil ? "100:100" : "0:0"
        #expect(files.lines == ["only", owner, "base-layer"], "\(files)")
        #expect(layers(root).count == 2)
    }

    @Test func layersAreSharedAndImagesRunByName() throws {
        let root = h.freshRoot()
        var builder = try builder()
        let oci = write(builder.ociArchive(), "demo-oci.tar", in: root)
        #expect(h.urun([oci, "true"], root: root).status == 0)
        builder.layers.append(Self.tar { t in t.add("srv/extra", content: "third layer\n") })
        builder.tags = ["example.org/demo:2.0"]
        let docker = write(builder.dockerSave(), "demo-docker.tar", in: root)
        #expect(h.urun([docker, "cat", "/srv/extra"], root: root).stdout == "third layer\n")
        #expect(layers(root).count == 3, "the two shared layers were unpacked once: \(layers(root))")
        // From the cache by name or tag, with the archives gone.
        unlink(oci)
        unlink(docker)
        #expect(h.urun(["demo:1.0", "cat", "/home/only"], root: root).stdout == "the new home\n")
        #expect(h.urun(["example.org/demo:2.0", "cat", "/srv/extra"], root: root).stdout == "third layer\n")
        let images = h.urun(["images"], root: root)
        #expect(images.lines.first?.hasPrefix("REPOSITORY") == true)
        #expect(images.stdout.contains("example.org/demo") && images.stdout.contains("1.0") && images.stdout.contains("2.0"), "\(images)")
        #expect(h.urun(["nope:1.0", "true"], root: root).stderr.contains("no image of that name in the cache"))
    }

    @Test func damagedArchivesAreRefusedAndLeaveNothing() throws {
        let root = h.freshRoot()
        let builder = try builder()
        let corrupt = write(builder.ociArchive(corrupt: { $0[$0.count / 2] ^= 0x55 }), "corrupt.tar", in: root)
        let result = h.urun([corrupt, "true"], root: root)
        #expect(result.status == 125)
        #expect(result.stderr.contains("the manifest says"), "\(result)")
        #expect(layers(root).isEmpty, "no layer of a damaged image stays: \(layers(root))")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: root + "/cache/tmp")) ?? []).isEmpty)
        #expect(h.urun(["images", "-q"], root: root).stdout.isEmpty)
    }

    @Test func removingImagesNeverBreaksContainers() throws {
        let root = h.freshRoot()
        let image = write(try builder().ociArchive(), "demo.tar", in: root)
        #expect(h.urun(["create", "--name", "keeper", image, "cat", "/home/only"], root: root).status == 0)
        let refused = h.urun(["rmi", "demo:1.0"], root: root)
        #expect(refused.status == 1 && refused.stderr.contains("container keeper uses it"), "\(refused)")
        let untagged = h.urun(["rmi", "-f", "demo:1.0"], root: root)
        #expect(untagged.stdout == "Untagged: example.org/demo:1.0\n", "\(untagged)")
        #expect(h.urun(["images"], root: root).stdout.contains("<none>"))
        // The kept container still starts: its image stayed, nameless.
        #expect(h.urun(["start", "-a", "keeper"], root: root).stdout == "the new home\n")
        #expect(h.urun(["image", "prune", "-f"], root: root).stdout.contains("Total reclaimed space: 0B"))
        // A running container holds its image: rmi refuses until it ends.
        let runner = h.start([h.binary, "run", "--init", image, "sleep", "30"], environment: ["URUN_ROOT": root])
        defer { if runner.isRunning { kill(runner.processIdentifier, SIGKILL) } }
        #expect(h.urun(["rm", "keeper"], root: root).status == 0)
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -f 'sleep 30'").status == 0 })
        let busy = h.urun(["rmi", String(try #require(h.urun(["images", "-q"], root: root).lines.first))], root: root)
        #expect(busy.status == 1 && busy.stderr.contains("in use by a running container"), "\(busy)")
        kill(runner.processIdentifier, SIGTERM)
        runner.waitUntilExit()
        let df = h.urun(["system", "df"], root: root)
        #expect(df.lines.first?.hasPrefix("TYPE") == true && df.stdout.contains("Images"), "\(df)")
        let pruned = h.urun(["system", "prune", "-a", "-f"], root: root)
        #expect(pruned.stdout.contains("Deleted image: sha256:"), "\(pruned)")
        #expect(h.urun(["images", "-q"], root: root).stdout.isEmpty)
        #expect(layers(root).isEmpty, "\(layers(root))")
    }
}
