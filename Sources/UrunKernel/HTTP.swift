/// One HTTP exchange as the registry client asks for it and a transport
/// (libcurl, in urun-transfer) performs it: the client decides what to send
/// and what a status means, the transport only moves bytes.
public struct HTTPRequest {
    public enum Body {
        case none
        case bytes([UInt8])
        /// `length` bytes of an open file from its current offset (a layer being pushed).
        case file(CInt, length: Int64)
    }

    public var method: String
    public var url: String
    /// Sent as given; the transport adds nothing but Host, User-Agent and framing.
    public var headers: [(String, String)]
    public var body: Body
    /// Called once the final response's headers are in; false aborts the transfer.
    public var onResponse: ((_ status: Int, _ headers: HTTPHeaders) -> Bool)?
    /// Where a 2xx response's body goes; false aborts. Without one the body is
    /// kept in memory, up to `limit` bytes (a longer one fails the exchange).
    public var sink: ((UnsafeRawBufferPointer) -> Bool)?
    public var limit: Int

    public init(
        method: String = "GET", url: String, headers: [(String, String)] = [], body: Body = .none,
        limit: Int = 4 << 20
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.limit = limit
    }
}

/// Response headers, names compared without case.
public struct HTTPHeaders: Sendable {
    public private(set) var fields: [(name: String, value: String)] = []

    public init() {}

    public mutating func add(_ name: String, _ value: String) { fields.append((name.lowercased(), value)) }

    public subscript(name: String) -> String? {
        let wanted = name.lowercased()
        return fields.first { $0.name == wanted }?.value
    }

    public func all(_ name: String) -> [String] {
        let wanted = name.lowercased()
        return fields.filter { $0.name == wanted }.map(\.value)
    }
}

public struct HTTPResponse {
    public let status: Int
    public let headers: HTTPHeaders
    /// The body, unless a sink took it.
    public let body: [UInt8]

    public init(status: Int, headers: HTTPHeaders, body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Why an exchange got no response.
public struct HTTPFailure: Error, Sendable {
    public enum Kind: Sendable {
        /// Name resolution, connection refused or reset: worth a retry.
        case connection
        case timeout
        /// The TLS handshake failed (a server that speaks plain HTTP, say).
        case tls
        /// The server's certificate is not trusted, or not for its name.
        case untrusted
        /// A body longer than the request's limit.
        case tooLarge
        /// The request's own callback stopped it.
        case aborted
        case other
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// Performs exchanges, several at once; redirects are returned, not followed,
/// so that the client decides what credentials a new host gets.
public protocol HTTPTransport: AnyObject {
    func perform(_ requests: [HTTPRequest]) -> [Result<HTTPResponse, HTTPFailure>]
}

/// How a transport checks the servers it talks to.
public struct TLSSettings: Sendable {
    /// false: any certificate is accepted (`--tls-verify=false`).
    public var verify = true
    /// PEM certificates trusted besides the system's (a private CA from --cert-dir or certs.d).
    public var extraAuthorities: [UInt8] = []
    /// A client certificate and its key, PEM files (certs.d's *.cert and *.key).
    public var clientCertificate: String?
    public var clientKey: String?

    public init() {}
}
