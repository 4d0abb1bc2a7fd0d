import UrunKernel

/// What an image says about running it: the `config` part of an OCI or
/// docker image configuration, and its layers' diff ids.
public struct ImageConfig: Equatable, Sendable {
    public var env: [String] = []
    public var entrypoint: [String]?
    public var cmd: [String]?
    public var workingDir: String?
    public var user: String?
    public var stopSignal: String?
    /// ExposedPorts' keys: "80/tcp", "53/udp" (what -P publishes).
    public var exposedPorts: [String] = []
    public var os: String?
    public var architecture: String?
    public var variant: String?
    public var created: String?
    /// sha256 hex digests of the uncompressed layers, bottom first.
    public var diffIDs: [String] = []

    public init() {}

    /// Parses an image configuration (application/vnd.oci.image.config.v1+json,
    /// or docker's); `source` names it in errors.
    public init(json: JSON, source: String) throws(UrunError) {
        guard json.members != nil else { throw .invalid("\(source): the image configuration is not a JSON object") }
        let config = json["config"] ?? json["Config"]
        env = config?["Env"]?.strings ?? []
        entrypoint = config?["Entrypoint"]?.strings
        cmd = config?["Cmd"]?.strings
        workingDir = config?["WorkingDir"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        user = config?["User"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        stopSignal = config?["StopSignal"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        exposedPorts = (config?["ExposedPorts"]?.members ?? []).map(\.0).sorted()
        os = json["os"]?.string
        architecture = json["architecture"]?.string
        variant = json["variant"]?.string
        created = json["created"]?.string
        guard let ids = json["rootfs"]?["diff_ids"]?.strings else {
            throw .invalid("\(source): the image configuration has no rootfs.diff_ids")
        }
        diffIDs = try ids.map { (id) throws(UrunError) in try Digest.hex(id, source: source, field: "rootfs.diff_ids") }
    }

    /// The parts urun uses, for the image's record in the cache.
    public var json: JSON {
        var config = JSON.object([("Env", .array(env.map(JSON.string)))])
        if let entrypoint { config["Entrypoint"] = .array(entrypoint.map(JSON.string)) }
        if let cmd { config["Cmd"] = .array(cmd.map(JSON.string)) }
        if let workingDir { config["WorkingDir"] = .string(workingDir) }
        if let user { config["User"] = .string(user) }
        if let stopSignal { config["StopSignal"] = .string(stopSignal) }
        if !exposedPorts.isEmpty { config["ExposedPorts"] = .object(exposedPorts.map { ($0, .object([])) }) }
        var object = JSON.object([
            ("config", config), ("rootfs", .object([("diff_ids", .array(diffIDs.map { .string("sha256:" + $0) }))])),
        ])
        if let os { object["os"] = .string(os) }
        if let architecture { object["architecture"] = .string(architecture) }
        if let variant { object["variant"] = .string(variant) }
        if let created { object["created"] = .string(created) }
        return object
    }

    /// "linux/amd64" or "linux/arm/v7".
    public var platform: String? {
        guard let os, let architecture else { return nil }
        return [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }
}

/// Content digests as images write them: "sha256:<64 hex digits>".
enum Digest {
    /// The hex part of a sha256 digest; anything else is an error naming `field`.
    static func hex(_ digest: String, source: String, field: String) throws(UrunError) -> String {
        guard digest.hasPrefix("sha256:") else {
            throw .invalid("\(source): \(field): unsupported digest \"\(digest)\" (urun verifies sha256)")
        }
        let hex = String(digest.dropFirst(7))
        guard isHex(hex) else { throw .invalid("\(source): \(field): malformed digest \"\(digest)\"") }
        return hex
    }

    static func isHex(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}
