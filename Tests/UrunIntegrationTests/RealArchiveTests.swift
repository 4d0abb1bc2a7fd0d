import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Archives and layouts written by the real tools (Debian's podman, skopeo,
/// buildah and umoci), not by urun's own test builders: each is run by urun
/// as the unprivileged test user, by content, by FILE:TAG, and by skopeo's
/// transport names.
@Suite(harnessAvailable, .requiring(RealArchives.missingTools == nil, RealArchives.missingTools ?? ""))
struct RealArchiveTests {
    let h = Harness.shared
    let a = RealArchives.shared

    func run(_ reference: String, _ command: [String] = [], root: String? = nil) -> Outcome {
        h.urun(["--network", "none", reference] + command, root: root)
    }

    @Test func theToolsMadeTheirArchives() throws {
        #expect(a.problem == nil, "\(a.problem ?? "")")
    }

    @Test(arguments: [
        ("podman-docker.tar", "podman"), ("podman-oci.tar", "podman"), ("podman-docker-dir", "podman"),
        ("podman-oci-dir", "podman"), ("skopeo-docker.tar", "podman"), ("skopeo-oci", "podman"),
        ("skopeo-dir", "podman"), ("skopeo-oci-packed.tar", "podman"), ("buildah-docker.tar", "buildah"),
        ("buildah-oci.tar", "buildah"), ("umoci", "umoci"), ("umoci.tar", "umoci"),
    ])
    func eachToolsArchiveRunsItsImage(_ name: String, _ tool: String) {
        let result = run(a.path(name))
        #expect(result.status == 0, "\(name): \(result)")
        #expect(result.text == "built by \(tool)", "\(name): the image's own command ran: \(result)")
    }

    @Test func tagsAndTransportsPickTheImage() {
        for reference in [
            a.path("podman-docker.tar") + ":localhost/podman:1", a.path("podman-docker.tar") + ":podman:1",
            "docker-archive:" + a.path("skopeo-docker.tar") + ":copied:2", "oci-archive:" + a.path("podman-oci.tar"),
            "oci:" + a.path("skopeo-oci") + ":copied", "dir:" + a.path("skopeo-dir"), "oci:" + a.path("umoci") + ":u1",
            "oci-archive:" + a.path("buildah-oci.tar") + ":buildah:1",
        ] {
            let result = run(reference, ["sh", "-c", "echo ran"])
            #expect(result.text == "ran", "\(reference): \(result)")
        }
        let missing = run(a.path("podman-docker.tar") + ":nosuch")
        #expect(missing.status == 125 && missing.stderr.contains("no image tagged nosuch (it holds localhost/podman:1)"), "\(missing)")
        let ambiguous = run(a.path("two-repositories.tar") + ":latest")
        #expect(ambiguous.status == 125 && ambiguous.stderr.contains("is ambiguous"), "\(ambiguous)")
        let picked = run(a.path("two-repositories.tar") + ":other.example/second:latest")
        #expect(picked.text == "built by buildah", "\(picked)")
        let wrongKind = run("oci:" + a.path("podman-oci.tar"))
        #expect(wrongKind.status == 125 && wrongKind.stderr.contains("names an image layout directory"), "\(wrongKind)")
    }
}

/// The archives, made once per test run as root in a storage of their own.
final class RealArchives: Sendable {
    static let shared = RealArchives()

    let directory: String
    let problem: String?

    func path(_ name: String) -> String { directory + "/" + name }

    /// Why the archives cannot be made here, cheaply found (the suite's condition).
    static let missingTools: String? = {
        if getuid() != 0 {
            return "the archives are made by podman, skopeo, buildah and umoci as root (run the tests as root, as CI does)"
        }
        let missing = ["podman", "skopeo", "buildah", "umoci"].filter { Harness.sh("command -v \($0)").status != 0 }
        return missing.isEmpty ? nil : "\(missing.joined(separator: ", ")) not installed (Helpers/setup installs them)"
    }()

    private init() {
        directory = Harness.shared.workspace + "/real-archives"
        if let missing = Self.missingTools {
            problem = missing
            return
        }
        let busybox = Harness.shared.image()
        let d = directory
        let storage = "--root \(d)/storage --runroot \(d)/run --storage-driver vfs"
        // A libpod state directory of its own (root's default is /run/libpod, which
        // `system reset` below removes): other suites run podman as root meanwhile.
        let podman = "podman \(storage) --tmpdir \(d)/run/libpod --cgroup-manager=cgroupfs --events-backend=file"
        let made = Harness.sh(
            """
            set -e
            mkdir -p \(d) && cd \(d)
            \(podman) import --change 'CMD ["/bin/sh","-c","echo built by podman"]' \(busybox) localhost/podman:1 >/dev/null
            \(podman) save -q --format docker-archive -o podman-docker.tar localhost/podman:1
            \(podman) save -q --format oci-archive -o podman-oci.tar localhost/podman:1
            \(podman) save -q --format docker-dir -o podman-docker-dir localhost/podman:1
            \(podman) save -q --format oci-dir -o podman-oci-dir localhost/podman:1
            skopeo copy -q oci-archive:podman-oci.tar docker-archive:skopeo-docker.tar:copied:2
            skopeo copy -q oci-archive:podman-oci.tar oci:skopeo-oci:copied
            skopeo copy -q oci-archive:podman-oci.tar dir:skopeo-dir
            (cd skopeo-oci && tar -cf ../skopeo-oci-packed.tar .)
            ctr=$(buildah \(storage) from scratch)
            buildah \(storage) add $ctr \(busybox) / >/dev/null
            buildah \(storage) config --cmd '["/bin/sh","-c","echo built by buildah"]' $ctr
            buildah \(storage) commit -q $ctr localhost/buildah:1 >/dev/null
            buildah \(storage) push -q localhost/buildah:1 docker-archive:buildah-docker.tar:buildah:1
            buildah \(storage) push -q localhost/buildah:1 oci-archive:buildah-oci.tar:buildah:1
            buildah \(storage) rm $ctr >/dev/null
            umoci init --layout umoci
            umoci new --image umoci:u1
            umoci unpack --image umoci:u1 umoci-bundle >/dev/null
            tar -C umoci-bundle/rootfs -xf \(busybox)
            umoci repack --image umoci:u1 umoci-bundle
            umoci config --image umoci:u1 --config.cmd /bin/sh --config.cmd -c --config.cmd 'echo built by umoci'
            umoci gc --layout umoci
            (cd umoci && tar -cf ../umoci.tar .)
            # Two different images, both :latest of their repositories, in one archive.
            \(podman) pull -q docker-archive:buildah-docker.tar >/dev/null
            \(podman) tag localhost/podman:1 first.example/first:latest
            \(podman) tag docker.io/library/buildah:1 other.example/second:latest
            \(podman) save -q -m -o two-repositories.tar first.example/first:latest other.example/second:latest
            rm -rf umoci-bundle
            \(podman) system reset -f >/dev/null 2>&1 || true
            rm -rf storage run
            find . -type d -exec chmod 755 {} + && find . -type f -exec chmod 644 {} +
            """)
        problem = made.status == 0 ? nil : "making the archives failed: \(made.stderr)"
    }
}
