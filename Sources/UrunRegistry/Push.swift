import Glibc
import UrunKernel

/// `urun push`, the network half: the image of an OCI layout (one manifest)
/// sent to a registry as the distribution spec says: each blob asked for
/// first (HEAD) and sent only when missing, mounted from another repository
/// of the registry when urun pulled it from there, else uploaded in one PUT;
/// the manifest last, so the tag never names an incomplete image.
public struct Push {
    public let reference: ImageReference
    public let layout: String
    /// A repository of the same registry that holds the blobs (the image's source).
    public let mountFrom: String?

    public init(reference: ImageReference, layout: String, mountFrom: String?) {
        self.reference = reference
        self.layout = layout
        self.mountFrom = mountFrom
    }

    /// Pushes the image; returns its manifest digest.
    public func run(_ client: RegistryClient) throws(UrunError) -> String {
        let repository = reference.repository
        var scope = "repository:\(repository):pull,push"
        if let mountFrom, mountFrom != repository { scope += " repository:\(mountFrom):pull" }
        guard let index = try? JSON(parsing: readFile(layout + "/index.json", limit: 1 << 20)),
            let descriptor = index["manifests"]?.array?.first, let digest = descriptor["digest"]?.string,
            ImageReference.isDigest(digest)
        else { throw .invalid("\(layout): no manifest to push") }
        let manifest = try readFile(blob(digest), limit: 4 << 20)
        guard let document = try? JSON(parsing: manifest), let config = document["config"]?["digest"]?.string,
            let layers = document["layers"]?.array
        else { throw .invalid("\(layout): the manifest names no config or layers") }
        let mediaType = document["mediaType"]?.string ?? descriptor["mediaType"]?.string ?? "application/vnd.oci.image.manifest.v1+json"
        for blobDigest in layers.compactMap({ $0["digest"]?.string }) + [config] {
            guard ImageReference.isDigest(blobDigest) else { throw .invalid("\(layout): a blob digest is not sha256") }
            try upload(blobDigest, client, scope: scope)
        }
        let tag = reference.digest ?? reference.tag ?? "latest"
        let response = try client.perform(
            RegistryClient.Exchange(path: "/v2/\(repository)/manifests/\(tag)") { url in
                HTTPRequest(method: "PUT", url: url, headers: [("Content-Type", mediaType)], body: .bytes(manifest), limit: 1 << 16)
            }, scope: scope)
        try expect(response, [201, 200], "the manifest")
        return digest
    }

    private func blob(_ digest: String) -> String { layout + "/blobs/sha256/" + digest.dropFirst(7) }

    private func upload(_ digest: String, _ client: RegistryClient, scope: String) throws(UrunError) {
        let repository = reference.repository
        let exists = try client.perform(
            RegistryClient.Exchange(path: "/v2/\(repository)/blobs/\(digest)") { HTTPRequest(method: "HEAD", url: $0, limit: 1 << 16) },
            scope: scope)
        if exists.status == 200 { return }
        var start = "/v2/\(repository)/blobs/uploads/"
        if let mountFrom, mountFrom != repository { start += "?mount=\(digest)&from=\(mountFrom)" }
        let begun = try client.perform(
            RegistryClient.Exchange(path: start) { HTTPRequest(method: "POST", url: $0, limit: 1 << 16) }, scope: scope)
        if begun.status == 201 { return }  // mounted from the other repository
        try expect(begun, [202], "starting the upload of \(digest)")
        guard let location = begun.headers["location"] else { throw .invalid("\(reference.registry): an upload without a Location") }
        let url = RegistryClient.resolve(location, against: client.base + start)
        let path = blob(digest)
        let fd = try sys(.registry, path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { closeQuietly(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .kernel(.registry, path: path, .current) }
        let put = url + (url.contains("?") ? "&" : "?") + "digest=" + RegistryClient.percentEncode(digest)
        let done = try client.perform(
            RegistryClient.Exchange(path: put) { url in
                lseek(fd, 0, SEEK_SET)  // a retry sends the blob from its start
                return HTTPRequest(
                    method: "PUT", url: url, headers: [("Content-Type", "application/octet-stream")],
                    body: .file(fd, length: Int64(st.st_size)), limit: 1 << 16)
            }, scope: scope)
        try expect(done, [201], "uploading \(digest)")
    }

    private func expect(_ response: HTTPResponse, _ statuses: [Int], _ what: String) throws(UrunError) {
        guard !statuses.contains(response.status) else { return }
        switch response.status {
        case 401: throw .invalid("\(reference.registry): authentication required to push \(reference.repository): run urun login \(reference.registry)")
        case 403: throw .invalid("\(reference.registry): pushing to \(reference.repository) is denied\(RegistryError.detail(response.body))")
        default: throw .invalid("\(reference): \(what): the registry answered status \(response.status)\(RegistryError.detail(response.body))")
        }
    }
}
