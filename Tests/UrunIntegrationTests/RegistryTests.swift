import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Pulls from real registries (Debian's docker-registry, started per test),
/// as the unprivileged test user: plain HTTP, TLS with a private CA, Basic
/// and Bearer token auth, multi-platform indexes, zstd layers, layers shared
/// between images, and downloads broken on purpose by a proxy.
@Suite(harnessAvailable, registryAvailable, .serialized)
struct RegistryTests {
    let h = Harness.shared

    func images() throws -> RegistryImages {
        try require(RegistryImages.shared.problem == nil, RegistryImages.shared.problem ?? "")
        return RegistryImages.shared
    }

    /// Blob GETs the proxy saw, by digest.
    func blobGets(_ registry: TestRegistry) -> [String] {
        registry.log("proxy.log").split(separator: "\n").compactMap { line -> String? in
            let parts = line.split(separator: " ")
            guard parts.count >= 2, parts[0] == "GET", let at = parts[1].range(of: "/blobs/sha256:") else { return nil }
            return String(parts[1][at.upperBound...])
        }
    }

    /// What a root holds besides the image: nothing in tmp/ and blobs/partial/.
    func leftovers(_ root: String) -> String {
        h.runAsUser(["sh", "-c", "find \(root)/cache/tmp \(root)/cache/blobs/partial -mindepth 1 2>/dev/null"]).stdout
    }

    @Test func pullRunAndDigestOverPlainHTTP() throws {
        let images = try images()
        let registry = try TestRegistry(proxy: true)
        defer { registry.stop() }
        try images.push("localhost/bb:1", to: registry, as: "bb:1")
        let root = h.freshRoot()
        let ref = registry.pullAddress + "/bb:1"

        let pulled = h.urun(["pull", ref], root: root)
        #expect(pulled.status == 0, "\(pulled)")
        #expect(pulled.text.count == 64, "\(pulled)")
        let fetched = blobGets(registry)
        #expect(fetched.count == 2, "config and one layer: \(fetched)")
        #expect(leftovers(root).isEmpty, "\(leftovers(root))")

        let ran = h.urun(["run", "--rm", "--network", "none", ref], root: root)
        #expect(ran.status == 0 && ran.text == "bb", "\(ran)")
        // Pulled again: the manifest is fetched, no blob is.
        #expect(h.urun(["pull", "-q", ref], root: root).status == 0)
        #expect(blobGets(registry).count == fetched.count, "\(blobGets(registry))")

        let listed = h.urun(["images"], root: root)
        #expect(listed.stdout.contains(registry.pullAddress + "/bb") && listed.stdout.contains(" 1 "), "\(listed)")

        // By digest, into a fresh root: the same image id.
        let digest = registry.digest("bb:1")
        let byDigest = h.urun(["pull", "-q", registry.pullAddress + "/bb@sha256:" + digest], root: h.freshRoot())
        #expect(byDigest.status == 0 && byDigest.text == pulled.text, "\(byDigest)")
        let wrong = h.urun(["pull", registry.pullAddress + "/bb@sha256:" + String(repeating: "0", count: 64)], root: root)
        #expect(wrong.status == 125 && wrong.stderr.contains("not found"), "\(wrong)")
    }

    @Test func runPullsWhatIsMissingAsThePolicySays() throws {
        let images = try images()
        let registry = try TestRegistry()
        defer { registry.stop() }
        try images.push("localhost/bb:1", to: registry, as: "app/bb:1")
        let ref = registry.address + "/app/bb:1"

        let never = h.urun(["run", "--rm", "--pull=never", "--network", "none", ref], root: h.freshRoot())
        #expect(never.status == 125 && never.stderr.contains("--pull=never"), "\(never)")
        let root = h.freshRoot()
        let ran = h.urun(["run", "--rm", "--network", "none", ref], root: root)
        #expect(ran.status == 0 && ran.text == "bb", "\(ran)")
        registry.stop()
        // Cached now: it runs with the registry gone, unless asked to pull always.
        let cached = h.urun(["run", "--rm", "--network", "none", ref, "echo", "cached"], root: root)
        #expect(cached.status == 0 && cached.text == "cached", "\(cached)")
        let always = h.urun(["run", "--rm", "--pull", "always", "--network", "none", ref], root: root)
        #expect(always.status == 125 && always.stderr.contains(registry.address), "\(always)")
        let newer = h.urun(["run", "--rm", "--pull=newer", "--network", "none", ref, "echo", "fallback"], root: root)
        #expect(newer.status == 0 && newer.text == "fallback" && newer.stderr.contains("using the cached image"), "\(newer)")
        // A file of the name wins over the registry.
        let unknown = h.urun(["run", "--rm", "--network", "none", "127.0.0.1:1/nothing:here"], root: root)
        #expect(unknown.status == 125 && unknown.stderr.split(separator: "\n").count == 1, "\(unknown)")
        let bad = h.urun(["pull", "No/Such:image:x"], root: root)
        #expect(bad.status == 125 && bad.stderr.contains("not an image reference"), "\(bad)")
    }

    @Test func platformsOfAnIndexAndZstdLayers() throws {
        let images = try images()
        let registry = try TestRegistry()
        defer { registry.stop() }
        // zstd first: skopeo would reuse the gzip blob multi's push leaves in the registry.
        try images.pushZstd(to: registry, as: "zstd:1")
        try images.push("localhost/multi:1", to: registry, as: "multi:1")
        let root = h.freshRoot()
        let native = h.urun(["run", "--rm", "--network", "none", registry.address + "/multi:1"], root: root)
        #expect(native.status == 0 && native.text == "amd64", "\(native)")
        let arm = h.urun(["run", "--rm", "--network", "none", "--platform", "linux/arm64", "--pull=always", registry.address + "/multi:1"], root: root)
        #expect(arm.status == 0 && arm.text == "arm64", "\(arm)")
        let none = h.urun(["pull", "--platform", "linux/s390x", registry.address + "/multi:1"], root: root)
        #expect(none.status == 125 && none.stderr.contains("no image for linux/s390x") && none.stderr.contains("linux/arm64"), "\(none)")
        let manifest = Harness.sh("skopeo inspect --raw --tls-verify=false docker://\(registry.address)/zstd:1").stdout
        #expect(manifest.contains("zstd"), "pushed with zstd: \(manifest)")
        let zstd = h.urun(["run", "--rm", "--network", "none", registry.address + "/zstd:1"], root: root)
        #expect(zstd.status == 0 && zstd.text == "bb", "\(zstd)")
    }

    @Test func aSharedLayerIsFetchedOnce() throws {
        let images = try images()
        let registry = try TestRegistry(proxy: true)
        defer { registry.stop() }
        try images.push("localhost/bb:1", to: registry, as: "bb:1")
        try images.push("localhost/bb2:1", to: registry, as: "bb2:1")
        let root = h.freshRoot()
        #expect(h.urun(["pull", "-q", registry.pullAddress + "/bb:1"], root: root).status == 0)
        let first = Set(blobGets(registry))
        let second = h.urun(["run", "--rm", "--network", "none", registry.pullAddress + "/bb2:1"], root: root)
        #expect(second.status == 0 && second.text == "second", "\(second)")
        let added = blobGets(registry).dropFirst(first.count)
        // bb2's config and its own layer; bb's layer is not fetched again.
        #expect(added.count == 2 && Set(added).isDisjoint(with: first), "first \(first), then \(added)")
    }

    @Test func tlsWithAPrivateCA() throws {
        let images = try images()
        let registry = try TestRegistry(tls: true)
        defer { registry.stop() }
        try images.push("localhost/bb:1", to: registry, as: "bb:1")
        let ref = registry.address + "/bb:1"
        let untrusted = h.urun(["pull", ref], root: h.freshRoot())
        #expect(untrusted.status == 125 && untrusted.stderr.contains("TLS") && untrusted.stderr.contains("--cert-dir"), "\(untrusted)")
        #expect(untrusted.stderr.split(separator: "\n").count == 1, "\(untrusted)")
        let trusted = h.urun(["pull", "-q", "--cert-dir", registry.certDirectory, ref], root: h.freshRoot())
        #expect(trusted.status == 0, "\(trusted)")
        let unverified = h.urun(["pull", "-q", "--tls-verify=false", ref], root: h.freshRoot())
        #expect(unverified.status == 0, "\(unverified)")
        // certs.d in the user's config, as podman keeps it.
        let home = h.freshRoot()
        h.runAsUser(["sh", "-c", "mkdir -p '\(home)/.config/containers/certs.d/\(registry.address)' && cp '\(registry.certDirectory)/ca.crt' '\(home)/.config/containers/certs.d/\(registry.address)/'"])
        let certsD = h.urun(["pull", "-q", ref], root: home + "/root", environment: ["HOME": home])
        #expect(certsD.status == 0, "\(certsD)")
    }

    /// Login, pull and logout against one registry; the secret never shows.
    func loginRoundTrip(_ registry: TestRegistry) throws {
        try RegistryImages.shared.push("localhost/bb:1", to: registry, as: "private/bb:1")
        let root = h.freshRoot()
        let runtime = root + "/xdg"
        h.runAsUser(["mkdir", "-m", "700", runtime])
        let env = ["XDG_RUNTIME_DIR": runtime]
        let ref = registry.address + "/private/bb:1"

        let anonymous = h.urun(["pull", ref], root: root, environment: env)
        #expect(anonymous.status == 125 && anonymous.stderr.contains("urun login \(registry.address)"), "\(anonymous)")
        #expect(anonymous.stderr.split(separator: "\n").count == 1, "\(anonymous)")

        let wrong = h.urun(["login", "-u", TestRegistry.user, "--password-stdin", registry.address], stdin: "not-it\n", root: root, environment: env)
        let refused = wrong.stderr.contains("wrong username or password") || wrong.stderr.contains("refused your credentials")
        #expect(wrong.status == 125 && refused, "\(wrong)")
        #expect(access(runtime + "/containers/auth.json", F_OK) != 0, "a failed login stores nothing")

        let login = h.urun(["login", "-u", TestRegistry.user, "--password-stdin", registry.address], stdin: TestRegistry.password + "\n", root: root, environment: env)
        #expect(login.status == 0 && login.stdout.contains("Login Succeeded"), "\(login)")
        let modes = h.runAsUser(["stat", "-c", "%a", runtime + "/containers", runtime + "/containers/auth.json"]).lines
        #expect(modes == ["700", "600"], "\(modes)")

        let pulled = h.urun(["run", "--explain", "--rm", "--network", "none", ref], root: root, environment: env)
        #expect(pulled.status == 0 && pulled.stdout.contains("bb"), "\(pulled)")
        for output in [login, pulled] {
            #expect(!output.stdout.contains(TestRegistry.password) && !output.stderr.contains(TestRegistry.password))
        }

        let logout = h.urun(["logout", registry.address], root: root, environment: env)
        #expect(logout.status == 0, "\(logout)")
        let again = h.urun(["logout", registry.address], root: root, environment: env)
        #expect(again.status == 125 && again.stderr.contains("not logged into"), "\(again)")
        let afterLogout = h.urun(["pull", ref], root: h.freshRoot(), environment: env)
        #expect(afterLogout.status == 125, "\(afterLogout)")
    }

    @Test func basicAuth() throws {
        _ = try images()
        let registry = try TestRegistry(auth: .basic)
        defer { registry.stop() }
        try loginRoundTrip(registry)
    }

    @Test func bearerTokens() throws {
        _ = try images()
        let registry = try TestRegistry(auth: .token)
        defer { registry.stop() }
        try loginRoundTrip(registry)
        // The token was asked for the repository's pull scope, with the user's credentials.
        #expect(registry.log("issuer.log").contains("token repository:private/bb:pull \(TestRegistry.user)"), "\(registry.log("issuer.log"))")
    }

    @Test func aTamperedBlobIsRefusedAndNothingIsKept() throws {
        let images = try images()
        let registry = try TestRegistry(proxy: true)
        defer { registry.stop() }
        try images.push("localhost/bb:1", to: registry, as: "bb:1")
        registry.setFault("corrupt")
        let root = h.freshRoot()
        let pulled = h.urun(["pull", registry.pullAddress + "/bb:1"], root: root)
        #expect(pulled.status == 125 && pulled.stderr.contains("refused"), "\(pulled)")
        #expect(pulled.stderr.split(separator: "\n").count == 1, "\(pulled)")
        let kept = h.runAsUser(["sh", "-c", "ls -A \(root)/cache/images \(root)/cache/layers \(root)/cache/tmp \(root)/cache/blobs/partial; ls \(root)/cache/blobs/sha256 | wc -l"])
        // Only the configuration, which was verified, is in blobs/.
        #expect(kept.lines.filter { !$0.hasSuffix(":") && !$0.isEmpty } == ["1"], "\(kept)")
        // The same blob tampered with in the registry's own storage.
        registry.setFault("pass")
        let layer = Harness.sh("ls -S \(registry.directory)/data/docker/registry/v2/blobs/sha256/*/*/data | head -1").text
        Harness.sh("printf 'X' | dd of='\(layer)' bs=1 seek=1000 conv=notrunc 2>/dev/null")
        let stored = h.urun(["pull", registry.pullAddress + "/bb:1"], root: root)
        #expect(stored.status == 125 && stored.stderr.contains("refused"), "\(stored)")
        #expect(h.urun(["images", "-q"], root: root).text.isEmpty)
    }

    @Test func aBrokenDownloadResumes() throws {
        let images = try images()
        let registry = try TestRegistry(proxy: true)
        defer { registry.stop() }
        try images.push("localhost/bb:1", to: registry, as: "bb:1")
        let ref = registry.pullAddress + "/bb:1"

        // A connection that drops halfway: retried from where it stopped.
        registry.setFault("truncate")
        let truncated = h.urun(["pull", "-q", ref], root: h.freshRoot())
        #expect(truncated.status == 0, "\(truncated)")
        #expect(registry.log("proxy.log").contains("Range") || registry.log("proxy.log").contains("bytes="), "\(registry.log("proxy.log"))")

        // A pull killed halfway (urun and urun-transfer, SIGKILL), then run again.
        registry.setFault("stall")
        let root = h.freshRoot()
        let process = h.start([h.binary, "pull", "-q", ref], environment: ["URUN_ROOT": root])
        let started = waitFor(30) {
            let size = h.runAsUser(["sh", "-c", "stat -c %s \(root)/cache/blobs/partial/* 2>/dev/null | sort -n | tail -1"]).text
            return (Int(size) ?? 0) > 0
        }
        #expect(started, "the download began: \(registry.log("proxy.log"))")
        Harness.sh("pkill -KILL -P \(process.processIdentifier); kill -KILL \(process.processIdentifier)")
        process.waitUntilExit()
        let partial = h.runAsUser(["sh", "-c", "stat -c %s \(root)/cache/blobs/partial/*"]).text
        registry.setFault("pass")
        let resumed = h.urun(["pull", "-q", ref], root: root)
        #expect(resumed.status == 0, "\(resumed)")
        #expect(registry.log("proxy.log").contains("bytes=\(partial)-"), "resumed from \(partial): \(registry.log("proxy.log"))")
        #expect(leftovers(root).isEmpty, "\(leftovers(root))")
        let ran = h.urun(["run", "--rm", "--network", "none", ref], root: root)
        #expect(ran.status == 0 && ran.text == "bb", "\(ran)")
    }

    @Test func twoPullsOfOneImageAtOnce() throws {
        let images = try images()
        let registry = try TestRegistry()
        defer { registry.stop() }
        try images.push("localhost/bb2:1", to: registry, as: "bb2:1")
        let root = h.freshRoot()
        let ref = registry.address + "/bb2:1"
        let outcomes = [0, 1].map { _ in
            let out = root + "/concurrent-" + UUID().uuidString
            return (h.start(["sh", "-c", "'\(h.binary)' pull -q \(ref) >\(out) 2>&1; echo $? >>\(out)"], environment: ["URUN_ROOT": root]), out)
        }
        for (process, _) in outcomes { process.waitUntilExit() }
        let results = outcomes.map { h.runAsUser(["cat", $0.1]).stdout }
        for result in results { #expect(result.hasSuffix("\n0\n"), "\(result)") }
        #expect(Set(results).count == 1, "\(results)")
        #expect(h.urun(["images", "-q"], root: root).lines.count == 1)
        #expect(leftovers(root).isEmpty, "\(leftovers(root))")
    }

    @Test func pushAndPullRoundTrips() throws {
        let images = try images()
        let registry = try TestRegistry(auth: .basic)
        defer { registry.stop() }
        try images.push("localhost/bb:1", to: registry, as: "bb:1")
        let root = h.freshRoot()
        let runtime = root + "/xdg"
        h.runAsUser(["mkdir", "-m", "700", runtime])
        let env = ["XDG_RUNTIME_DIR": runtime]
        let a = registry.address
        let login = h.urun(["login", "-u", TestRegistry.user, "--password-stdin", a], stdin: TestRegistry.password, root: root, environment: env)
        #expect(login.status == 0, "\(login)")
        #expect(h.urun(["pull", "-q", a + "/bb:1"], root: root, environment: env).status == 0)

        // A pulled image pushed elsewhere keeps its manifest, byte for byte (its blobs mounted, not sent).
        let copied = h.urun(["push", a + "/bb:1", a + "/copy/bb:1"], root: root, environment: env)
        #expect(copied.status == 0 && copied.stdout.contains("sha256:" + registry.digest("bb:1")), "\(copied)")
        #expect(registry.digest("copy/bb:1") == registry.digest("bb:1"))
        // Saved, its archive holds the same manifest.
        let archive = root + "/bb.tar"
        #expect(h.urun(["save", "--format", "oci-archive", "-o", archive, a + "/bb:1"], root: root, environment: env).status == 0)
        let index = Harness.sh("tar -xOf \(archive) index.json").stdout
        #expect(index.contains("sha256:" + registry.digest("bb:1")), "\(index)")

        // commit → push → pull into a fresh cache → run.
        #expect(h.urun(["run", "--name", "work", "--network", "none", a + "/bb:1", "sh", "-c", "echo committed > /new"], root: root, environment: env).status == 0)
        #expect(h.urun(["commit", "-q", "work", a + "/team/app:1"], root: root, environment: env).status == 0)
        let pushed = h.urun(["push", a + "/team/app:1"], root: root, environment: env)
        #expect(pushed.status == 0 && pushed.stdout.contains("sha256:" + registry.digest("team/app:1")), "\(pushed)")
        let again = h.urun(["push", a + "/team/app:1"], root: root, environment: env)
        #expect(again.status == 0 && again.stdout == pushed.stdout, "pushed twice, the same digest: \(again)")
        let fresh = h.freshRoot()
        let ran = h.urun(["run", "--rm", "--network", "none", a + "/team/app:1", "cat", "/new"], root: fresh, environment: env)
        #expect(ran.status == 0 && ran.text == "committed", "\(ran)")

        // Logged out: the push is refused in one line.
        #expect(h.urun(["logout", a], root: root, environment: env).status == 0)
        let refused = h.urun(["push", a + "/team/app:1", a + "/team/app:2"], root: root, environment: env)
        #expect(refused.status == 125 && refused.stderr.contains("urun login") && refused.stderr.split(separator: "\n").count == 1, "\(refused)")
        #expect(h.urun(["rm", "work"], root: root).status == 0)
    }

    /// docker's config.json: `auths` read as they are, `credsStore` through a `docker-credential-*` helper.
    @Test func dockerConfigAndCredentialHelpers() throws {
        _ = try images()
        let registry = try TestRegistry(auth: .basic)
        defer { registry.stop() }
        try RegistryImages.shared.push("localhost/bb:1", to: registry, as: "private/bb:1")
        let ref = registry.address + "/private/bb:1"
        let home = h.freshRoot()
        let bin = home + "/bin"
        let encoded = Data("\(TestRegistry.user):\(TestRegistry.password)".utf8).base64EncodedString()
        let helper = """
            #!/bin/sh
            read server
            [ "$1" = get ] && [ "$server" = "\(registry.address)" ] || { echo "credentials not found"; exit 1; }
            echo '{"ServerURL":"\(registry.address)","Username":"\(TestRegistry.user)","Secret":"\(TestRegistry.password)"}'
            """
        h.runAsUser(["sh", "-c", "mkdir -p \(home)/.docker \(bin) && cat > \(bin)/docker-credential-urtest && chmod 755 \(bin)/docker-credential-urtest"], stdin: helper)
        let env = ["HOME": home, "PATH": bin + ":/usr/bin:/bin"]
        h.runAsUser(["sh", "-c", "cat > \(home)/.docker/config.json"], stdin: #"{"credsStore": "urtest"}"#)
        let viaHelper = h.urun(["pull", "-q", ref], root: home + "/a", environment: env)
        #expect(viaHelper.status == 0, "\(viaHelper)")
        h.runAsUser(["sh", "-c", "cat > \(home)/.docker/config.json"], stdin: #"{"auths": {"\#(registry.address)": {"auth": "\#(encoded)"}}}"#)
        let viaAuths = h.urun(["pull", "-q", ref], root: home + "/b", environment: env)
        #expect(viaAuths.status == 0, "\(viaAuths)")
        h.runAsUser(["sh", "-c", "cat > \(home)/.docker/config.json"], stdin: #"{"credsStore": "absent"}"#)
        let missing = h.urun(["pull", "-q", ref], root: home + "/c", environment: env)
        #expect(missing.status == 125 && missing.stderr.contains("docker-credential-absent"), "\(missing)")
    }
}
