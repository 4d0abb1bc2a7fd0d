import Glibc
import UrunKernel

/// Media types a registry serves, by role.
enum MediaType {
    static let indexes = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]
    static let manifests = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"]
    static let schema1 = ["application/vnd.docker.distribution.manifest.v1+json", "application/vnd.docker.distribution.manifest.v1+prettyjws"]
    static let layers = [
        "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.image.rootfs.diff.tar.zstd",
    ]
    /// What a manifest request accepts: every manifest and index kind urun reads.
    static let accept = (manifests + indexes).joined(separator: ", ")
}

/// `urun pull`, the network half: the image's manifest (the platform's, from
/// an index), configuration and missing layers fetched into the store's blob
/// directory, every blob verified against its digest, and an OCI layout of
/// the image written for urun to unpack. Layers the store already has (by
/// diff id, from any source) or whose blob is already here are not fetched.
///
///     <blobs>/sha256/<hex>     verified blobs
///     <blobs>/partial/<hex>    downloads in progress (resumed with Range; flock'd while written)
public struct Pull {
    public let reference: ImageReference
    public let platform: String
    /// The OCI layout to write (an empty directory of the caller's).
    public let layout: String
    public let blobs: String
    /// Whether a layer's tree is in the store already, by diff id.
    public let hasLayer: (String) -> Bool
    public let progress: Bool

    public init(
        reference: ImageReference, platform: String, layout: String, blobs: String, hasLayer: @escaping (String) -> Bool,
        progress: Bool
    ) {
        self.reference = reference
        self.platform = platform
        self.layout = layout
        self.blobs = blobs
        self.hasLayer = hasLayer
        self.progress = progress
    }

    static let manifestLimit = 4 << 20
    static let configLimit = 16 << 20
    /// Layers fetched at once.
    public static let parallelLayers = 3

    /// Fetches the image; returns the digest of the manifest written.
    public func run(_ client: RegistryClient) throws(UrunError) -> String {
        let scope = "repository:\(reference.repository):pull"
        var (document, bytes, mediaType, digest) = try manifest(reference.manifestReference, client, scope: scope, expected: reference.digest)
        if MediaType.indexes.contains(mediaType) {
            let chosen = try select(document, digest: digest)
            (document, bytes, mediaType, digest) = try manifest(chosen, client, scope: scope, expected: chosen)
        }
        guard MediaType.manifests.contains(mediaType) else {
            throw .invalid("\(reference): unsupported manifest media type \"\(printable(mediaType, limit: 80))\"")
        }
        guard let configDescriptor = document["config"], let configDigest = configDescriptor["digest"]?.string,
            let layers = document["layers"]?.array
        else { throw .invalid("\(reference): the manifest has no config or no layers") }
        let config = try Descriptor(configDescriptor, field: "config", reference: reference)
        var downloads: [Descriptor] = []
        let configBytes = try fetchSmallBlob(config, client, scope: scope)
        guard let configJSON = try? JSON(parsing: configBytes), let diffIDs = configJSON["rootfs"]?["diff_ids"]?.strings else {
            throw .invalid("\(reference): the image configuration \(configDigest) has no rootfs.diff_ids")
        }
        guard diffIDs.count == layers.count else {
            throw .invalid("\(reference): the manifest lists \(layers.count) layers, the configuration \(diffIDs.count) diff ids")
        }
        var layerDescriptors: [Descriptor] = []
        for (i, layer) in layers.enumerated() {
            let type = layer["mediaType"]?.string ?? ""
            guard MediaType.layers.contains(type) else {
                if type.contains("foreign") || type.contains("nondistributable") {
                    throw .invalid("\(reference): layer \(i + 1) is non-distributable (\(printable(type, limit: 80))): it must be fetched from a URL outside the registry, which urun does not do")
                }
                throw .invalid("\(reference): layer \(i + 1): unsupported media type \"\(printable(type, limit: 80))\"\(type.contains("encrypted") ? " (encrypted layers are not supported)" : "")")
            }
            let descriptor = try Descriptor(layer, field: "layers[\(i)]", reference: reference)
            layerDescriptors.append(descriptor)
            let diffID = diffIDs[i].hasPrefix("sha256:") ? String(diffIDs[i].dropFirst(7)) : diffIDs[i]
            if !hasLayer(diffID) && !hasBlob(descriptor.hex) && !downloads.contains(where: { $0.hex == descriptor.hex }) {
                downloads.append(descriptor)
            }
        }
        try download(downloads, client, scope: scope)
        try writeLayout(manifest: bytes, mediaType: mediaType, digest: digest, blobs: [config] + layerDescriptors)
        return digest
    }

    // MARK: manifests

    private func manifest(_ name: String, _ client: RegistryClient, scope: String, expected: String?) throws(UrunError)
        -> (JSON, [UInt8], String, String)
    {
        let path = "/v2/\(reference.repository)/manifests/\(name)"
        let response = try client.perform(
            RegistryClient.Exchange(path: path) { url in
                HTTPRequest(url: url, headers: [("Accept", MediaType.accept)], limit: Self.manifestLimit)
            }, scope: scope)
        try expectSuccess(response, what: "manifest \(name)")
        let digest = "sha256:" + SHA256.digest(of: response.body)
        if let expected, expected != digest {
            throw .invalid("\(reference): the manifest the registry sent hashes to \(digest), not \(expected): refused")
        }
        if let claimed = response.headers["docker-content-digest"], claimed.hasPrefix("sha256:"), claimed != digest {
            throw .invalid("\(reference): the manifest hashes to \(digest), but the registry says \(printable(claimed, limit: 80)): refused")
        }
        let document: JSON
        do { document = try JSON(parsing: response.body) } catch {
            throw .invalid("\(reference): the manifest is not JSON (\(error))")
        }
        let contentType = response.headers["content-type"].map { String($0.split(separator: ";")[0]).trimmingWhitespace() }
        let mediaType = document["mediaType"]?.string ?? contentType ?? ""
        if MediaType.schema1.contains(mediaType) || document["schemaVersion"]?.int == 1 {
            throw .invalid("\(reference) has only a Docker schema 1 manifest, which registries stopped accepting in 2020 and urun does not read: push the image again with a current tool")
        }
        return (document, response.body, mediaType, digest)
    }

    /// The index's manifest for the platform asked for; attestations and other
    /// platforms are passed over.
    private func select(_ index: JSON, digest: String) throws(UrunError) -> String {
        guard let entries = index["manifests"]?.array else { throw .invalid("\(reference): the index has no manifests") }
        var available: [String] = []
        for entry in entries {
            guard let p = entry["platform"], let os = p["os"]?.string, let arch = p["architecture"]?.string, os != "unknown" else {
                continue
            }
            let name = [os, arch, p["variant"]?.string].compactMap { $0 }.joined(separator: "/")
            available.append(name)
            if Platform.matches(name, wanted: platform), let chosen = entry["digest"]?.string, ImageReference.isDigest(chosen) {
                return chosen
            }
        }
        throw .invalid("\(reference): no image for \(platform) (it has \(available.isEmpty ? "no platforms" : available.joined(separator: ", "))); choose one with --platform")
    }

    private func expectSuccess(_ response: HTTPResponse, what: String) throws(UrunError) {
        switch response.status {
        case 200...299: return
        case 401: throw .invalid("\(reference.registry): authentication required for \(reference.repository)\(RegistryError.detail(response.body)): run urun login \(reference.registry)")
        case 403: throw .invalid("\(reference.registry): access to \(reference.repository) denied\(RegistryError.detail(response.body))")
        case 404: throw .invalid("\(reference): \(what) not found\(RegistryError.detail(response.body))")
        default: throw .invalid("\(reference): \(what): the registry answered status \(response.status)\(RegistryError.detail(response.body))")
        }
    }

    // MARK: blobs

    struct Descriptor {
        let hex: String
        let size: Int64
        let mediaType: String

        init(_ json: JSON, field: String, reference: ImageReference) throws(UrunError) {
            guard let digest = json["digest"]?.string, ImageReference.isDigest(digest) else {
                throw .invalid("\(reference): \(field).digest is not a sha256 digest")
            }
            guard let size = json["size"]?.integer(Int64.self), size >= 0 else {
                throw .invalid("\(reference): \(field).size is missing or out of range")
            }
            hex = String(digest.dropFirst(7))
            self.size = size
            mediaType = json["mediaType"]?.string ?? ""
        }
    }

    var store: BlobDirectory { BlobDirectory(blobs) }
    func blobPath(_ hex: String) -> String { store.path(hex) }
    private func hasBlob(_ hex: String) -> Bool { store.has(hex) }

    private func fetchSmallBlob(_ descriptor: Descriptor, _ client: RegistryClient, scope: String) throws(UrunError) -> [UInt8] {
        guard descriptor.size <= Self.configLimit else {
            throw .invalid("\(reference): the configuration is \(descriptor.size) bytes; urun reads at most \(Self.configLimit)")
        }
        if hasBlob(descriptor.hex) { return try readFile(blobPath(descriptor.hex), limit: Self.configLimit) }
        let response = try client.perform(
            RegistryClient.Exchange(path: "/v2/\(reference.repository)/blobs/sha256:\(descriptor.hex)") { url in
                HTTPRequest(url: url, limit: Self.configLimit)
            }, scope: scope)
        try expectSuccess(response, what: "blob sha256:\(descriptor.hex)")
        let actual = SHA256.digest(of: response.body)
        guard actual == descriptor.hex, response.body.count == descriptor.size else {
            throw .invalid("\(reference): blob sha256:\(descriptor.hex) arrived as \(response.body.count) bytes hashing to sha256:\(actual): refused")
        }
        try store.store(response.body)
        return response.body
    }

    /// The layers, a few at once. A download another urun is making waits for it.
    private func download(_ descriptors: [Descriptor], _ client: RegistryClient, scope: String) throws(UrunError) {
        guard !descriptors.isEmpty else { return }
        try makeDirectories(blobs + "/partial", mode: 0o700, step: .registry)
        try makeDirectories(blobs + "/sha256", mode: 0o700, step: .registry)
        let display = ProgressDisplay(enabled: progress, names: descriptors.map { String($0.hex.prefix(12)) }, sizes: descriptors.map(\.size))
        defer { display.finish() }
        var mine: [BlobDownload] = []
        var busy: [(Int, Descriptor)] = []
        for (i, descriptor) in descriptors.enumerated() {
            switch try BlobDownload.claim(descriptor, pull: self, wait: false) {
            case .claimed(let download):
                download.onProgress = { display.update(i, $0) }
                mine.append(download)
            case .present: display.update(i, descriptor.size)
            case .busy: busy.append((i, descriptor))
            }
        }
        try fetch(mine, client, scope: scope)
        for (i, descriptor) in busy {
            guard case .claimed(let download) = try BlobDownload.claim(descriptor, pull: self, wait: true) else {
                display.update(i, descriptor.size)
                continue
            }
            download.onProgress = { display.update(i, $0) }
            try fetch([download], client, scope: scope)
        }
    }

    private func fetch(_ downloads: [BlobDownload], _ client: RegistryClient, scope: String) throws(UrunError) {
        defer { downloads.forEach { $0.close() } }
        let exchanges = downloads.map { download in
            RegistryClient.Exchange(path: "/v2/\(reference.repository)/blobs/sha256:\(download.descriptor.hex)") { url in
                download.request(url)
            }
        }
        let responses: [HTTPResponse]
        do {
            responses = try client.perform(exchanges, scope: scope)
        } catch {
            if let long = downloads.first(where: \.overflowed) {
                long.discard()
                throw .invalid("\(reference): blob sha256:\(long.descriptor.hex) is longer than the \(long.descriptor.size) bytes the manifest names: refused, nothing kept")
            }
            throw error
        }
        for (i, response) in responses.enumerated() {
            try expectSuccess(response, what: "blob sha256:\(downloads[i].descriptor.hex)")
            try downloads[i].complete(reference: reference)
        }
    }

    // MARK: the layout

    private func writeLayout(manifest: [UInt8], mediaType: String, digest: String, blobs descriptors: [Descriptor]) throws(UrunError) {
        try makeDirectories(layout + "/blobs/sha256", mode: 0o700, step: .registry)
        try writeFile(layout + "/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}\n", mode: 0o600)
        let manifestHex = try store.store(manifest)
        for hex in [manifestHex] + descriptors.map(\.hex) where hasBlob(hex) { try store.link(hex, into: layout) }
        var annotations: [(String, JSON)] = [("io.containerd.image.name", .string(reference.description))]
        if let tag = reference.tag, reference.digest == nil { annotations.append(("org.opencontainers.image.ref.name", .string(tag))) }
        let index = JSON.object([
            ("schemaVersion", .int(2)),
            ("manifests", .array([.object([
                ("mediaType", .string(mediaType)), ("digest", .string(digest)), ("size", .int(manifest.count)),
                ("annotations", .object(annotations)),
            ])])),
        ])
        try writeFile(layout + "/index.json", index.serialized() + "\n", mode: 0o600)
    }
}

/// One layer blob being fetched into `<blobs>/partial/<hex>`: what is there
/// already (a killed pull's) is hashed and resumed with a Range request; the
/// file is flock'd while written, so two pulls never write one blob; it moves
/// to sha256/ only once its size and digest match the manifest's.
final class BlobDownload {
    enum Claim {
        case claimed(BlobDownload)
        /// Complete already (another pull finished it).
        case present
        /// Another pull is writing it.
        case busy
    }

    let descriptor: Pull.Descriptor
    private let partial: String
    private let final: String
    private var fd: CInt
    private var hasher = SHA256()
    private(set) var received: Int64 = 0
    var onProgress: ((Int64) -> Void)?
    private var rangeAsked: Int64 = 0
    /// The registry sent more than the manifest's size.
    private(set) var overflowed = false

    private let store: BlobDirectory

    private init(descriptor: Pull.Descriptor, store: BlobDirectory, partial: String, final: String, fd: CInt) {
        self.descriptor = descriptor
        self.store = store
        self.partial = partial
        self.final = final
        self.fd = fd
    }

    static func claim(_ descriptor: Pull.Descriptor, pull: Pull, wait: Bool) throws(UrunError) -> Claim {
        let final = pull.blobPath(descriptor.hex)
        let partial = pull.blobs + "/partial/" + descriptor.hex
        if fileStatus(final) != nil { return .present }
        let fd = try sys(.registry, path: partial) { open(partial, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        if flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) != 0 {
            closeQuietly(fd)
            if errno == EWOULDBLOCK { return .busy }
            throw .kernel(.registry, path: partial, .current)
        }
        if fileStatus(final) != nil {
            // Another pull finished it while we waited: what is left at the partial's name is an empty file of ours.
            unlink(partial)
            closeQuietly(fd)
            return .present
        }
        let download = BlobDownload(descriptor: descriptor, store: pull.store, partial: partial, final: final, fd: fd)
        try download.hashExisting()
        return .claimed(download)
    }

    /// A killed pull's bytes: hashed, so the download goes on from their end.
    private func hashExisting() throws(UrunError) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .kernel(.registry, path: partial, .current) }
        if Int64(st.st_size) > descriptor.size { try restart() }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .kernel(.registry, path: partial, .current) }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            received += Int64(n)
        }
    }

    private func restart() throws(UrunError) {
        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else { throw .kernel(.registry, path: partial, .current) }
        hasher = SHA256()
        received = 0
    }

    func request(_ url: String) -> HTTPRequest {
        var request = HTTPRequest(url: url, limit: 1 << 16)
        rangeAsked = received
        if received > 0 { request.headers.append(("Range", "bytes=\(received)-")) }
        request.onResponse = { [self] status, headers in
            // 206 from where we are; a 200 (a server that ignores Range) starts afresh.
            if status == 206, let range = headers["content-range"], range.hasPrefix("bytes \(rangeAsked)-") { return true }
            if status == 200 || status == 206 { return (try? restart()) != nil }
            return true
        }
        request.sink = { [self] bytes in
            guard received + Int64(bytes.count) <= descriptor.size else {
                overflowed = true
                return false
            }
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                offset += n
            }
            hasher.update(bytes)
            received += Int64(bytes.count)
            onProgress?(received)
            return true
        }
        return request
    }

    /// Verifies the blob and moves it into place; a wrong one is deleted.
    func complete(reference: ImageReference) throws(UrunError) {
        var copy = hasher
        let actual = copy.finalizeHex()
        guard received == descriptor.size, actual == descriptor.hex else {
            unlink(partial)
            throw .invalid("\(reference): blob sha256:\(descriptor.hex) arrived as \(received) bytes hashing to sha256:\(actual), not the \(descriptor.size) bytes the manifest names: refused, nothing kept")
        }
        try store.install(partial, as: descriptor.hex)
        unlink(partial)
    }

    func discard() { unlink(partial) }

    func close() {
        if fd >= 0 { closeQuietly(fd) }
        fd = -1
    }
}
