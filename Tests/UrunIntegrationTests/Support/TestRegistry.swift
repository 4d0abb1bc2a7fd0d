import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Debian's docker-registry (the distribution project's registry) on
/// 127.0.0.1, started by a test with storage of its own and stopped at its
/// end: plain HTTP, or TLS with a CA made for it; anonymous, htpasswd Basic
/// auth, or Bearer tokens from Helpers/registry-token-issuer, which the
/// registry verifies against the issuer's certificate. Optionally behind
/// Helpers/faulty-proxy, which breaks blob downloads on demand.
final class TestRegistry {
    enum Auth { case anonymous, basic, token }

    static let user = "tester"
    static let password = "s3cret-Pa55"

    static let missing: String? = {
        if getuid() != 0 { return "the test registries and their images are set up by root (run the tests as root, as CI does)" }
        let needed = ["docker-registry", "skopeo", "podman", "buildah", "openssl", "htpasswd"]
        let absent = needed.filter { Harness.sh("command -v \($0)").status != 0 }
        if !absent.isEmpty { return "not installed: \(absent.joined(separator: ", ")) (Helpers/setup installs them)" }
        if Harness.sh("/usr/bin/python3 -c 'import cryptography'").status != 0 { return "python3-cryptography is not installed" }
        return nil
    }()

    let directory: String
    let port: Int
    let tls: Bool
    private var processes: [Process] = []
    /// The proxy's port, when there is one.
    private(set) var proxyPort: Int?

    var address: String { "127.0.0.1:\(port)" }
    /// What urun is pointed at: the proxy when there is one.
    var pullAddress: String { proxyPort.map { "127.0.0.1:\($0)" } ?? address }
    /// A directory the test user can read with the CA's certificate: `--cert-dir`.
    var certDirectory: String { directory + "/client-certs" }
    var faultFile: String { directory + "/fault" }

    init(tls: Bool = false, auth: Auth = .anonymous, proxy: Bool = false) throws {
        let h = Harness.shared
        directory = h.workspace + "/registry-" + UUID().uuidString.prefix(8)
        self.tls = tls
        port = freePort()
        let root = Harness.packageRoot
        var config = """
            version: 0.1
            log:
              level: error
            storage:
              filesystem:
                rootdirectory: \(directory)/data
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:\(port)
              secret: urun-test

            """
        var setup = "mkdir -p \(directory)/client-certs && chmod 755 \(directory) \(directory)/client-certs && cd \(directory)"
        if tls {
            setup += """
                 && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=urun-test-ca -keyout ca.key -out ca.crt 2>/dev/null \
                 && openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null \
                 && printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext \
                 && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out server.crt 2>/dev/null \
                 && cp ca.crt client-certs/ca.crt && chmod 644 client-certs/ca.crt
                """
            config += "  tls:\n    certificate: \(directory)/server.crt\n    key: \(directory)/server.key\n"
        }
        var issuerPort: Int?
        switch auth {
        case .anonymous: break
        case .basic:
            setup += " && htpasswd -Bbc htpasswd \(Self.user) '\(Self.password)' 2>/dev/null"
            config += "auth:\n  htpasswd:\n    realm: urun-test\n    path: \(directory)/htpasswd\n"
        case .token:
            let issuer = freePort()
            issuerPort = issuer
            setup += " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=urun-test-issuer -keyout issuer.key -out issuer.crt 2>/dev/null"
            config += """
                auth:
                  token:
                    realm: http://127.0.0.1:\(issuer)/token
                    service: urun-test-registry
                    issuer: urun-test-issuer
                    rootcertbundle: \(directory)/issuer.crt

                """
        }
        let made = Harness.sh(setup)
        guard made.status == 0 else { throw Failure("cannot set up the registry: \(made)") }
        try config.write(toFile: directory + "/config.yml", atomically: true, encoding: .utf8)
        if let issuerPort {
            start("\(root)/Helpers/registry-token-issuer \(issuerPort) \(directory)/issuer.key \(directory)/issuer.crt \(Self.user) '\(Self.password)'", log: "issuer.log")
            try waitForPort(issuerPort)
        }
        start("docker-registry serve \(directory)/config.yml", log: "registry.log")
        try waitForPort(port)
        if proxy {
            let proxyPort = freePort()
            self.proxyPort = proxyPort
            start("env FAULT_FILE=\(faultFile) \(root)/Helpers/faulty-proxy \(proxyPort) \(address) pass", log: "proxy.log")
            try waitForPort(proxyPort)
        }
    }

    deinit { stop() }

    func stop() {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes = []
        Harness.sh("rm -rf '\(directory)'")
    }

    private func start(_ command: String, log: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "exec \(command) >>\(directory)/\(log) 2>&1"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
        processes.append(process)
    }

    private func waitForPort(_ port: Int) throws {
        let ready = waitFor(20) { connectable(port) }
        if !ready { throw Failure("nothing listens on 127.0.0.1:\(port): \(Harness.sh("cat \(directory)/*.log").stdout)") }
    }

    /// A log of the registry's helpers: "issuer.log" (one line per token) or "proxy.log" (one per request).
    func log(_ name: String) -> String { (try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)) ?? "" }

    /// What the proxy does to the next blob downloads.
    func setFault(_ mode: String) { try? mode.write(toFile: faultFile, atomically: true, encoding: .utf8) }

    /// Copies an image into the registry with skopeo, as root.
    @discardableResult
    func push(_ source: String, as name: String, options: [String] = []) throws -> Outcome {
        let creds = "--dest-creds \(Self.user):'\(Self.password)'"
        let pushed = Harness.sh("skopeo copy -q --dest-tls-verify=false \(creds) \(options.joined(separator: " ")) \(source) docker://\(address)/\(name)")
        guard pushed.status == 0 else { throw Failure("skopeo could not push \(name): \(pushed)") }
        return pushed
    }

    /// The digest of a manifest in the registry (of the index, for a multi-platform image).
    func digest(_ name: String) -> String {
        Harness.sh("skopeo inspect --raw --tls-verify=false --creds \(Self.user):'\(Self.password)' docker://\(address)/\(name) | sha256sum | cut -d' ' -f1").text
    }

    /// Where the registry keeps a blob's bytes.
    func blobPath(_ hex: String) -> String {
        "\(directory)/data/docker/registry/v2/blobs/sha256/\(hex.prefix(2))/\(hex)/data"
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A TCP port nothing listens on now (the kernel's choice for a bound, closed socket).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

func connectable(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// The images the registry tests push, made once by root with podman and
/// buildah in a storage of their own: `bb` (busybox, CMD echoes "bb"), `bb2`
/// (bb's layer plus one more), and `multi`, an index of an amd64 and an
/// arm64 image (the same busybox; each CMD says which it is).
final class RegistryImages: Sendable {
    static let shared = RegistryImages()

    let storage: String
    let problem: String?

    var podman: String { "podman --root \(storage)/root --runroot \(storage)/runroot --tmpdir \(storage)/runroot/libpod --storage-driver vfs --cgroup-manager=cgroupfs --events-backend=file" }
    var buildah: String { "buildah --root \(storage)/root --runroot \(storage)/runroot --storage-driver vfs" }

    private init() {
        let h = Harness.shared
        storage = h.workspace + "/registry-images"
        guard TestRegistry.missing == nil else {
            problem = TestRegistry.missing
            return
        }
        let busybox = h.image("busybox.tar.gz")
        let p = "podman --root \(storage)/root --runroot \(storage)/runroot --tmpdir \(storage)/runroot/libpod --storage-driver vfs --cgroup-manager=cgroupfs --events-backend=file"
        let b = "buildah --root \(storage)/root --runroot \(storage)/runroot --storage-driver vfs"
        let made = Harness.sh("""
            set -e
            mkdir -p \(storage) && cd \(storage)
            \(p) import -q --change 'CMD ["/bin/sh","-c","echo bb"]' \(busybox) localhost/bb:1 >/dev/null
            \(p) import -q --arch amd64 --change 'CMD ["/bin/sh","-c","echo amd64"]' \(busybox) localhost/multi-amd64 >/dev/null
            \(p) import -q --arch arm64 --variant v8 --change 'CMD ["/bin/sh","-c","echo arm64"]' \(busybox) localhost/multi-arm64 >/dev/null
            \(p) manifest create localhost/multi:1 >/dev/null
            \(p) manifest add localhost/multi:1 containers-storage:localhost/multi-amd64 >/dev/null
            \(p) manifest add localhost/multi:1 containers-storage:localhost/multi-arm64 >/dev/null
            ctr=$(\(b) from localhost/bb:1)
            echo second > second.txt
            \(b) copy $ctr second.txt /second.txt >/dev/null
            \(b) config --cmd '["/bin/cat","/second.txt"]' $ctr
            \(b) commit -q $ctr localhost/bb2:1 >/dev/null
            \(b) rm $ctr >/dev/null
            \(p) save -q --format docker-archive -o bb.tar localhost/bb:1
            """)
        problem = made.status == 0 ? nil : "podman/buildah could not make the test images: \(made)"
        registryImagesToRemove = storage
        atexit { _ = system("rm -rf '\(registryImagesToRemove)'") }
    }

    /// bb with its layer compressed with zstd (skopeo compresses the archive's plain layer).
    func pushZstd(to registry: TestRegistry, as name: String) throws {
        try registry.push("docker-archive:\(storage)/bb.tar", as: name, options: ["--dest-compress-format", "zstd", "--format", "oci"])
    }

    /// Pushes an image of the storage (`localhost/bb:1`) to the registry as `name`.
    func push(_ image: String, to registry: TestRegistry, as name: String, options: String = "") throws {
        let all = image.contains("multi") ? "manifest push --all" : "push"
        let pushed = Harness.sh("\(podman) \(all) -q --tls-verify=false --creds \(TestRegistry.user):'\(TestRegistry.password)' \(options) \(image) docker://\(registry.address)/\(name)")
        guard pushed.status == 0 else { throw Failure("podman could not push \(image): \(pushed)") }
    }
}

nonisolated(unsafe) private var registryImagesToRemove = ""

let registryAvailable = Requirement(met: TestRegistry.missing == nil, reason: TestRegistry.missing ?? "")
