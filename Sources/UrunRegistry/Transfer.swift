import Glibc
import UrunKernel

/// urun-transfer's work: one request, performed over a transport.
public enum Transfer {
    public static func perform(_ request: TransferRequest, transport: (TLSSettings) -> HTTPTransport) throws(UrunError) {
        switch request.command {
        case .pull: try pull(request, transport: transport)
        case .push: try push(request, transport: transport)
        case .login: try login(request, transport: transport)
        }
    }

    private static func client(_ request: TransferRequest, transport: (TLSSettings) -> HTTPTransport) throws(UrunError)
        -> (ImageReference, RegistryClient)
    {
        let reference: ImageReference
        switch ImageReference.parse(request.target) {
        case .success(let parsed): reference = parsed
        case .failure(let error): throw .invalid("\(printable(request.target)): \(error.reason)")
        }
        let credentials = try AuthFiles(explicit: request.authFile).credentials(for: reference.registry)
        let client = RegistryClient(
            reference: reference, transport: transport(try request.tls(for: reference.registry)), credentials: credentials,
            allowHTTP: request.allowsHTTP(reference))
        return (reference, client)
    }

    private static func push(_ request: TransferRequest, transport: (TLSSettings) -> HTTPTransport) throws(UrunError) {
        let (reference, client) = try client(request, transport: transport)
        let digest = try Push(reference: reference, layout: request.layout, mountFrom: request.mountFrom).run(client)
        print("\(reference): digest: \(digest)")
    }

    private static func pull(_ request: TransferRequest, transport: (TLSSettings) -> HTTPTransport) throws(UrunError) {
        let (reference, client) = try client(request, transport: transport)
        let layers = request.layers
        let suffix = request.layerSuffix
        let pull = Pull(
            reference: reference, platform: request.platform, layout: request.layout, blobs: request.blobs,
            hasLayer: { fileStatus(layers + "/" + $0 + suffix) != nil }, progress: request.progress)
        _ = try pull.run(client)
    }

    /// Checks the credentials against the registry (its /v2/ answers 200 with
    /// them), then stores them.
    private static func login(_ request: TransferRequest, transport: (TLSSettings) -> HTTPTransport) throws(UrunError) {
        guard let credentials = request.credentials else { throw .invalid("login: no credentials") }
        let registry = request.target
        guard ImageReference.isRegistry(registry) else { throw .invalid("\(printable(registry)) is not a registry host[:port]") }
        let reference = ImageReference(registry: registry, repository: "", tag: nil, digest: nil)
        let client = RegistryClient(
            reference: reference, transport: transport(try request.tls(for: registry)), credentials: credentials,
            allowHTTP: request.allowsHTTP(reference))
        let response = try client.perform(RegistryClient.Exchange(path: "/v2/") { HTTPRequest(url: $0, limit: 1 << 16) }, scope: "")
        switch response.status {
        case 200...299: break
        case 401, 403: throw .invalid("\(registry): wrong username or password")
        default: throw .invalid("\(registry): /v2/ answered status \(response.status): not a registry?")
        }
        try AuthFiles(explicit: request.authFile).store(credentials, for: registry)
    }
}
