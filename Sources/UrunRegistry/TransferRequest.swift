import Glibc
import UrunKernel

/// What urun asks urun-transfer to do, sent as one JSON document on its
/// stdin (a secret never appears in a command line). urun-transfer is a
/// separate, dynamically linked program: libcurl, OpenSSL and glibc's name
/// resolution need the dynamic loader that the static urun lacks, and its
/// threads stay out of the process that clones containers.
public struct TransferRequest {
    public enum Command: String { case pull, push, login }

    public var command: Command
    /// pull: the full reference; login: the registry.
    public var target: String
    public var platform: String = Platform.native
    /// pull: the empty directory to write the image's OCI layout into; push: the layout to send.
    public var layout: String = ""
    /// push: a repository of the registry to mount blobs from.
    public var mountFrom: String?
    /// pull: the store's blob directory.
    public var blobs: String = ""
    /// pull: the store's layer directory, and the suffix of this id mapping's trees.
    public var layers: String = ""
    public var layerSuffix: String = ""
    /// nil: verify, and allow plain HTTP only for a loopback registry.
    public var tlsVerify: Bool?
    public var certDirectory: String?
    public var authFile: String?
    public var progress = false
    /// login: the credentials to check.
    public var credentials: RegistryCredentials?

    public init(command: Command, target: String) {
        self.command = command
        self.target = target
    }

    public var json: JSON {
        var object = JSON.object([
            ("command", .string(command.rawValue)), ("target", .string(target)), ("platform", .string(platform)),
            ("layout", .string(layout)), ("blobs", .string(blobs)), ("layers", .string(layers)),
            ("layerSuffix", .string(layerSuffix)), ("progress", .bool(progress)),
        ])
        if let tlsVerify { object["tlsVerify"] = .bool(tlsVerify) }
        if let certDirectory { object["certDirectory"] = .string(certDirectory) }
        if let authFile { object["authFile"] = .string(authFile) }
        if let mountFrom { object["mountFrom"] = .string(mountFrom) }
        if let credentials {
            object["username"] = .string(credentials.username)
            object["password"] = .string(credentials.password)
        }
        return object
    }

    public init(json: JSON) throws(UrunError) {
        guard let name = json["command"]?.string, let command = Command(rawValue: name), let target = json["target"]?.string else {
            throw .invalid("urun-transfer: a request needs a command and a target")
        }
        self.init(command: command, target: target)
        platform = json["platform"]?.string ?? platform
        layout = json["layout"]?.string ?? ""
        blobs = json["blobs"]?.string ?? ""
        layers = json["layers"]?.string ?? ""
        layerSuffix = json["layerSuffix"]?.string ?? ""
        progress = json["progress"]?.bool ?? false
        tlsVerify = json["tlsVerify"]?.bool
        certDirectory = json["certDirectory"]?.string
        authFile = json["authFile"]?.string
        mountFrom = json["mountFrom"]?.string
        if let user = json["username"]?.string, let password = json["password"]?.string {
            credentials = RegistryCredentials(username: user, password: password)
        }
    }

    /// The TLS settings for `registry`: --tls-verify, and the CA and client
    /// certificates of --cert-dir or of certs.d as podman and docker keep them
    /// (`*.crt` a CA, `*.cert` with its `*.key` a client certificate).
    public func tls(for registry: String) throws(UrunError) -> TLSSettings {
        var settings = TLSSettings()
        settings.verify = tlsVerify ?? true
        let home = (try? UrunPaths.homeDirectory()) ?? "/nonexistent"
        let directories = certDirectory.map { [$0] } ?? [
            home + "/.config/containers/certs.d/" + registry, "/etc/containers/certs.d/" + registry, "/etc/docker/certs.d/" + registry,
        ]
        for directory in directories {
            guard let names = try? directoryEntries(directory) else {
                if certDirectory != nil { throw .invalid("--cert-dir \(printable(directory)): \(Errno.current.message)") }
                continue
            }
            for name in names.sorted() {
                let path = directory + "/" + name
                if name.hasSuffix(".crt") {
                    settings.extraAuthorities += try readFile(path, limit: 1 << 20) + [0x0A]
                } else if name.hasSuffix(".cert"), settings.clientCertificate == nil {
                    let key = path.dropLast(5) + ".key"
                    guard fileStatus(String(key)) != nil else { throw .invalid("\(printable(path)) has no key beside it (\(printable(String(key))))") }
                    settings.clientCertificate = path
                    settings.clientKey = String(key)
                }
            }
        }
        return settings
    }

    /// Plain HTTP: with --tls-verify=false, or for a loopback registry unless --tls-verify=true.
    public func allowsHTTP(_ reference: ImageReference) -> Bool {
        tlsVerify == false || (tlsVerify == nil && reference.isLoopback)
    }
}
