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
        // Not in the cache: pulled, and that fails here (no network) in one line saying both.
        let missing = h.urun(["nope:1.0", "true"], root: root)
        #expect(missing.status == 125 && missing.stderr.contains("nor in the cache") && missing.stderr.contains("pulling it failed"), "\(missing)")
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

    /// A gzip or xz tarball is decompressed by a child process beside urun:
    /// cut short or damaged, it still fails in one line naming the file, and
    /// neither a tree nor a process stays.
    @Test(arguments: ["busybox.tar.gz", "busybox.tar.xz", "busybox.tar.zst"])
    func truncatedCompressedTarballsLeaveNothing(_ fixture: String) throws {
        let root = h.freshRoot()
        let source = try Data(contentsOf: URL(fileURLWithPath: h.image(fixture)))
        let cut = root + "/cut-" + fixture
        let damaged = root + "/damaged-" + fixture
        var flipped = source
        flipped[flipped.count / 2] ^= 0xFF
        Harness.sh("head -c \(source.count / 2) '\(h.image(fixture))' > '\(cut)' && chmod 644 '\(cut)'")
        try flipped.write(to: URL(fileURLWithPath: damaged))
        chmod(damaged, 0o644)
        for archive in [cut, damaged] {
            let result = h.urun(["--network", "none", archive, "true"], root: root)
            #expect(result.status == 125 && result.stderr.contains(archive), "\(result)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
            #expect(layers(root).isEmpty, "\(layers(root))")
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: root + "/cache/tmp")) ?? []).isEmpty)
        }
        #expect(Harness.sh("pgrep -u \(h.uid) -f '\(root)/cut-'").status != 0, "no decompressor left")
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
        let runner = h.start([h.binary, "run", "--init", image, "sleep", "3232"], environment: ["URUN_ROOT": root])
        defer { if runner.isRunning { kill(runner.processIdentifier, SIGKILL) } }
        #expect(h.urun(["rm", "keeper"], root: root).status == 0)
        // The image's user 1000 is a subordinate id on the host, not the test user.
        #expect(waitFor { Harness.sh("pgrep -x -f 'sleep 3232'").status == 0 }, "the container runs")
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

/// Without subordinate ids only the caller's own id exists inside: fake root
/// lets package managers' chown and device mknod calls succeed without effect.
@Suite(harnessAvailable) struct FakeRootTests {
    let h = Harness.shared

    @Test func chownAndDeviceNodesSucceedWithoutEffect() {
        let script = "touch /f; chown 100:100 /f && echo chown-ok; mknod /dev/disk b 8 0 && echo mknod-ok; mkfifo /fifo && echo fifo-ok; stat -c %u /f"
        let fake = h.urun(["--userns", "single", h.image(), "sh", "-c", script])
        #expect(fake.lines == ["chown-ok", "mknod-ok", "fifo-ok", "0"], "the calls succeed, nothing changes: \(fake)")
        let real = h.urun(["--userns", "single", "--fake-root=false", h.image(), "sh", "-c", script])
        #expect(real.lines == ["fifo-ok", "0"], "\(real)")
        #expect(real.stderr.contains("Invalid argument"), "without fake root, chown to an unmapped id fails")
    }

    /// A package whose maintainer script chowns a file, as many do, built in
    /// `directory` with the host's dpkg-deb.
    static func makePackage(in directory: String) -> Outcome {
        Harness.sh(
            """
            set -e
            mkdir -p \(directory)/pkg/DEBIAN \(directory)/pkg/usr/share/hello-urun
            printf 'Package: hello-urun\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: urun tests <t@example.org>\\nDescription: a test package\\n' > \(directory)/pkg/DEBIAN/control
            printf '#!/bin/sh\\nset -e\\nchown 100:100 /usr/share/hello-urun/file\\n' > \(directory)/pkg/DEBIAN/postinst
            chmod 755 \(directory)/pkg/DEBIAN/postinst
            echo hello > \(directory)/pkg/usr/share/hello-urun/file
            dpkg-deb --root-owner-group --build \(directory)/pkg \(directory)/hello.deb >/dev/null
            chmod 755 \(directory) && chmod 644 \(directory)/hello.deb
            """)
    }

    /// A Debian root filesystem with the host's own dpkg, and the package.
    @Test(.requiring(access("/usr/bin/dpkg", X_OK) == 0 && access("/usr/bin/dpkg-deb", X_OK) == 0, "no dpkg on this host to build a Debian root filesystem from"))
    func dpkgInstallsALocalPackage() throws {
        let root = h.freshRoot()
        let tree = root + "/debian"
        try #require(Self.makePackage(in: root).status == 0)
        let made = Harness.sh(
            """
            set -e
            mkdir -p \(tree) && tar -C \(tree) -xf \(h.image())
            # The busybox tree has absolute symlinks such as usr/bin/dpkg-deb ->
            # /bin/busybox: a plain cp would write through them onto the host.
            for b in /usr/bin/dpkg /usr/bin/dpkg-deb /usr/bin/dpkg-split /usr/bin/dpkg-query /usr/bin/tar; do
              cp --remove-destination $b \(tree)/usr/bin/
              for l in $(ldd $b | grep -o '/[^ ]*'); do
                mkdir -p \(tree)$(dirname $l); cp -L --remove-destination $l \(tree)$l
              done
            done
            # dpkg insists that ldconfig exists; a static busybox tree needs none.
            rm -f \(tree)/sbin/ldconfig && printf '#!/bin/sh\\nexit 0\\n' > \(tree)/sbin/ldconfig && chmod 755 \(tree)/sbin/ldconfig
            mkdir -p \(tree)/var/lib/dpkg/info \(tree)/var/lib/dpkg/updates \(tree)/var/lib/dpkg/triggers \(tree)/etc/dpkg/dpkg.cfg.d \(tree)/var/log
            touch \(tree)/var/lib/dpkg/status \(tree)/var/lib/dpkg/available
            cp \(root)/hello.deb \(tree)/hello.deb
            tar -C \(tree) -cf \(root)/debian.tar .
            chmod 644 \(root)/debian.tar
            """)
        try #require(made.status == 0, "\(made)")
        let image = root + "/debian.tar"
        // Full paths: busybox's sh prefers its own dpkg applet to the one in PATH.
        let installed = h.urun(["--userns", "single", image, "sh", "-c", "/usr/bin/dpkg -i /hello.deb && /usr/bin/dpkg -s hello-urun | grep Status"], root: root)
        #expect(installed.status == 0, "\(installed)")
        #expect(installed.stdout.contains("Status: install ok installed"), "\(installed)")
        let refused = h.urun(["--userns", "single", "--fake-root=false", image, "/usr/bin/dpkg", "-i", "/hello.deb"], root: root)
        #expect(refused.status != 0, "without fake root the maintainer script's chown fails: \(refused)")
        #expect(refused.stderr.contains("post-installation script"), "\(refused)")
        if h.subordinateRange != nil {  // CI's test user has them: RunTests requires it
            // With subordinate ids the chown is real.
            let real = h.urun([image, "sh", "-c", "/usr/bin/dpkg -i /hello.deb >/dev/null && stat -c %u:%g /usr/share/hello-urun/file"], root: root)
            #expect(real.stdout == "100:100\n", "\(real)")
        }
    }

    /// apt-get installs a local .deb in a real Debian root filesystem, in
    /// both modes. apt's downloader switches to the _apt user and checks;
    /// under fake root urun tells apt to stay root.
    static let debianRootfs = [ProcessInfo.processInfo.environment["URUN_TEST_DEBIAN_ROOTFS"], Harness.packageRoot + "/.build/bench/debian-minbase.tar.zst"]
        .compactMap { $0 }.first { access($0, R_OK) == 0 }

    @Test(.requiring(debianRootfs != nil, "no Debian root filesystem tarball (Helpers/test makes one with mmdebstrap as root; or set URUN_TEST_DEBIAN_ROOTFS)"))
    func aptGetInstallsALocalPackage() throws {
        let rootfs = try #require(Self.debianRootfs)
        let root = h.freshRoot()
        try #require(Self.makePackage(in: root + "/pkgs").status == 0)
        let image = root + "/debian.tar.zst"
        try #require(Harness.sh("cp '\(rootfs)' \(image) && chmod 644 \(image)").status == 0)
        let script = "apt-get install -y -q /pkgs/hello.deb >/dev/null 2>&1; dpkg -s hello-urun | grep Status; stat -c %u:%g /usr/share/hello-urun/file"
        let fake = h.urun(["--userns", "single", "-v", root + "/pkgs:/pkgs:ro", image, "sh", "-c", script], root: root)
        #expect(fake.lines.first == "Status: install ok installed", "\(fake)")
        #expect(fake.lines.last == "0:0", "fake root: the chown did nothing")
        if h.subordinateRange != nil {
            let real = h.urun(["-v", root + "/pkgs:/pkgs:ro", image, "sh", "-c", script], root: root)
            #expect(real.lines == ["Status: install ok installed", "100:100"], "\(real)")
        }
    }
}
