import CUrunSHA256

/// Writes image archives without a registry or a container engine: the
/// layout `docker save` writes (manifest.json, <id>/layer.tar, <config>.json)
/// or an OCI image layout as `podman save --format oci-archive` and skopeo
/// write (oci-layout, index.json, blobs/sha256/...). The JSON is written
/// here by hand, field by field, so tests can also break it on purpose.
public struct ImageArchiveBuilder {
    /// Each layer's tar (uncompressed), bottom first.
    public var layers: [[UInt8]] = []
    public var env: [String] = []
    public var entrypoint: [String]?
    public var cmd: [String]?
    public var workingDir: String?
    public var user: String?
    public var stopSignal: String?
    public var architecture = "amd64"
    public var tags: [String] = []

    public init() {}

    public static func sha256(_ bytes: [UInt8]) -> String {
        var context = urun_sha256()
        urun_sha256_init(&context)
        bytes.withUnsafeBytes { urun_sha256_update(&context, $0.baseAddress, $0.count) }
        var digest = [UInt8](repeating: 0, count: 32)
        urun_sha256_final(&context, &digest)
        return digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for c in text.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    public static func list(_ items: [String]) -> String { "[" + items.map(quoted).joined(separator: ",") + "]" }

    /// The image configuration; `diffIDs` defaults to the layers' real digests.
    public func configJSON(diffIDs: [String]? = nil) -> [UInt8] {
        var config: [String] = ["\"Env\":" + Self.list(env)]
        if let entrypoint { config.append("\"Entrypoint\":" + Self.list(entrypoint)) }
        if let cmd { config.append("\"Cmd\":" + Self.list(cmd)) }
        if let workingDir { config.append("\"WorkingDir\":" + Self.quoted(workingDir)) }
        if let user { config.append("\"User\":" + Self.quoted(user)) }
        if let stopSignal { config.append("\"StopSignal\":" + Self.quoted(stopSignal)) }
        let ids = diffIDs ?? layers.map { "sha256:" + Self.sha256($0) }
        let text = "{\"architecture\":\(Self.quoted(architecture)),\"os\":\"linux\",\"created\":\"2024-01-01T00:00:00Z\",\"config\":{\(config.joined(separator: ","))},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":\(Self.list(ids))}}"
        return Array(text.utf8)
    }

    /// docker save's own layout: layers as <sha256>/layer.tar (a repeated
    /// layer as a symlink to the first, as docker writes it).
    public func dockerSave(config: [UInt8]? = nil) -> [UInt8] {
        let config = config ?? configJSON()
        let configName = Self.sha256(config) + ".json"
        var tar = TarWriter()
        var members: [String] = []
        var written: [String: String] = [:]
        for layer in layers {
            let id = Self.sha256(layer)
            let member = id + "/layer.tar"
            members.append(member)
            if written[id] != nil { continue }
            written[id] = member
            tar.add(id + "/", .directory, mode: 0o755)
            tar.add(id + "/VERSION", content: "1.0")
            tar.add(member, bytes: layer)
        }
        tar.add(configName, bytes: config)
        let manifest = "[{\"Config\":\(Self.quoted(configName)),\"RepoTags\":\(Self.list(tags)),\"Layers\":\(Self.list(members))}]"
        tar.add("manifest.json", content: manifest)
        return tar.archive
    }

    /// Several images in one docker save archive, their layers each written once.
    public static func dockerSave(images: [ImageArchiveBuilder]) -> [UInt8] {
        var tar = TarWriter()
        var written = Set<String>()
        var entries: [String] = []
        for image in images {
            let config = image.configJSON()
            let configName = sha256(config) + ".json"
            var members: [String] = []
            for layer in image.layers {
                let id = sha256(layer)
                members.append(id + "/layer.tar")
                if written.insert(id).inserted { tar.add(id + "/layer.tar", bytes: layer) }
            }
            if written.insert(configName).inserted { tar.add(configName, bytes: config) }
            entries.append("{\"Config\":\(quoted(configName)),\"RepoTags\":\(list(image.tags)),\"Layers\":\(list(members))}")
        }
        tar.add("manifest.json", content: "[" + entries.joined(separator: ",") + "]")
        return tar.archive
    }

    /// An OCI image layout. `compress` turns a layer's tar into its blob
    /// (gzip, zstd, or nothing) with the media type to declare for it.
    public func ociArchive(
        config: [UInt8]? = nil, compress: ([UInt8]) -> (blob: [UInt8], mediaType: String) = {
            ($0, "application/vnd.oci.image.layer.v1.tar")
        }, corrupt: ((inout [UInt8]) -> Void)? = nil
    ) -> [UInt8] {
        let config = config ?? configJSON()
        var blobs: [(String, [UInt8])] = [(Self.sha256(config), config)]
        var descriptors: [String] = []
        for layer in layers {
            let (blob, type) = compress(layer)
            let digest = Self.sha256(blob)
            var stored = blob
            corrupt?(&stored)
            blobs.append((digest, stored))
            descriptors.append("{\"mediaType\":\(Self.quoted(type)),\"digest\":\"sha256:\(digest)\",\"size\":\(blob.count)}")
        }
        let manifest = Array(
            "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:\(Self.sha256(config))\",\"size\":\(config.count)},\"layers\":[\(descriptors.joined(separator: ","))]}"
                .utf8)
        blobs.append((Self.sha256(manifest), manifest))
        var annotations = ""
        if let tag = tags.first {
            annotations = ",\"annotations\":{\"io.containerd.image.name\":\(Self.quoted(tag)),\"org.opencontainers.image.ref.name\":\(Self.quoted(String(tag.split(separator: ":").last ?? "latest")))}"
        }
        let index = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:\(Self.sha256(manifest))\",\"size\":\(manifest.count)\(annotations)}]}"
        var tar = TarWriter()
        tar.add("blobs/", .directory, mode: 0o755)
        tar.add("blobs/sha256/", .directory, mode: 0o755)
        var seen = Set<String>()
        for (digest, bytes) in blobs where seen.insert(digest).inserted {
            tar.add("blobs/sha256/" + digest, bytes: bytes)
        }
        tar.add("index.json", content: index)
        tar.add("oci-layout", content: "{\"imageLayoutVersion\":\"1.0.0\"}")
        return tar.archive
    }
}
