import Glibc
import UrunKernel

/// The registry HTTP API v2 (distribution-spec) for one registry: each
/// exchange authorized as the registry asks (a Bearer token fetched from the
/// realm its WWW-Authenticate names, for the repository's scope, kept for its
/// lifetime; or Basic), redirects followed with credentials kept to the
/// registry's own host, and retries with backoff on 429, 5xx and dropped
/// connections. Plain HTTP only where allowed (`--tls-verify=false`, or a
/// loopback registry, as docker allows), and only after HTTPS fails.
public final class RegistryClient {
    public let registry: String
    private let apiHost: String
    private let transport: HTTPTransport
    private let credentials: RegistryCredentials?
    private let allowHTTP: Bool
    private var scheme = "https"
    private var tokens: [String: (value: String, expires: Double)] = [:]
    /// The registry asked for Basic authorization rather than a token.
    private var basic = false
    /// The longest wait between retries, and how many are made.
    static let retries = 3
    static let maxRedirects = 5

    public init(reference: ImageReference, transport: HTTPTransport, credentials: RegistryCredentials?, allowHTTP: Bool) {
        registry = reference.registry
        apiHost = reference.apiHost
        self.transport = transport
        self.credentials = credentials
        self.allowHTTP = allowHTTP
    }

    public var base: String { scheme + "://" + apiHost }

    /// One exchange: `path` under /v2/ of the registry (or a URL the registry
    /// gave, an upload's Location), the request built by `make` for a URL
    /// (again for each retry or redirect, so a download can resume where it stopped).
    public struct Exchange {
        public let path: String
        public let make: (String) -> HTTPRequest

        public init(path: String, make: @escaping (String) -> HTTPRequest) {
            self.path = path
            self.make = make
        }
    }

    private struct Pending {
        let exchange: Exchange
        var url: String
        var authorize = true
        var redirects = 0
        var attempts = 0
        var reauthorized = false
    }

    public func perform(_ exchange: Exchange, scope: String) throws(UrunError) -> HTTPResponse {
        try perform([exchange], scope: scope)[0]
    }

    /// Performs the exchanges (several at once), returning each final response
    /// (2xx, or a status the caller explains); a transport failure that
    /// retries do not cure throws.
    public func perform(_ exchanges: [Exchange], scope: String) throws(UrunError) -> [HTTPResponse] {
        var pending = exchanges.map { Pending(exchange: $0, url: $0.path.hasPrefix("http") ? $0.path : base + $0.path) }
        var responses = [HTTPResponse?](repeating: nil, count: exchanges.count)
        var open = Array(exchanges.indices)
        var httpTried = scheme == "http"
        while !open.isEmpty {
            let requests = open.map { i -> HTTPRequest in
                var request = pending[i].exchange.make(pending[i].url)
                if pending[i].authorize, let authorization = authorization(scope) {
                    request.headers.append(("Authorization", authorization))
                }
                return request
            }
            let results = transport.perform(requests)
            var next: [Int] = []
            var delay = 0.0
            var challenge: String?
            var switchToHTTP = false
            for (k, i) in open.enumerated() {
                switch results[k] {
                case .failure(let failure):
                    if failure.kind == .tls, allowHTTP, !httpTried, pending[i].url.hasPrefix("https://" + apiHost + "/") {
                        switchToHTTP = true
                        next.append(i)
                    } else if failure.kind == .connection || failure.kind == .timeout, pending[i].attempts < Self.retries {
                        pending[i].attempts += 1
                        delay = max(delay, Self.backoff(pending[i].attempts))
                        next.append(i)
                    } else {
                        throw .invalid("\(registry): \(failure.kind == .tls || failure.kind == .untrusted ? "TLS: " : "")\(failure.message)\(hint(failure))")
                    }
                case .success(let response):
                    switch response.status {
                    case 401 where !pending[i].reauthorized && pending[i].authorize:
                        pending[i].reauthorized = true
                        challenge = challenge ?? response.headers["www-authenticate"]
                        next.append(i)
                    case 301, 302, 303, 307, 308:
                        guard let location = response.headers["location"], pending[i].redirects < Self.maxRedirects else {
                            throw .invalid("\(registry): too many redirects, or one without a Location")
                        }
                        pending[i].redirects += 1
                        pending[i].url = Self.resolve(location, against: pending[i].url)
                        // A credential for the registry never goes to blob storage elsewhere.
                        if Self.origin(of: pending[i].url) != Self.origin(of: base) { pending[i].authorize = false }
                        next.append(i)
                    case 429, 500...599 where pending[i].attempts < Self.retries:
                        pending[i].attempts += 1
                        let asked = response.headers["retry-after"].flatMap { Double($0.trimmingWhitespace()) } ?? 0
                        delay = max(delay, min(30, max(asked, Self.backoff(pending[i].attempts))))
                        next.append(i)
                    default:
                        responses[i] = response
                    }
                }
            }
            if switchToHTTP {
                httpTried = true
                let httpsBase = base
                scheme = "http"
                for i in next where pending[i].url.hasPrefix(httpsBase) {
                    pending[i].url = base + pending[i].url.dropFirst(httpsBase.count)
                }
            }
            if let challenge { try authenticate(challenge, scope: scope) }
            if delay > 0 { usleep(UInt32(delay * 1_000_000)) }
            open = next
        }
        return responses.map { $0! }
    }

    private static func backoff(_ attempt: Int) -> Double { Double(1 << (attempt - 1)) }

    private func hint(_ failure: HTTPFailure) -> String {
        guard failure.kind == .untrusted else { return "" }
        return " (a private CA: --cert-dir DIR, or its ca.crt in ~/.config/containers/certs.d/\(registry)/; a test registry: --tls-verify=false)"
    }

    private func authorization(_ scope: String) -> String? {
        if let token = tokens[scope], token.expires > monotonicSeconds() { return "Bearer " + token.value }
        if basic, let credentials { return credentials.basicAuthorization }
        return nil
    }

    /// Answers a challenge: `Bearer realm=...,service=...` gets a token for the
    /// scope from the realm (with the credentials, if any); `Basic` the credentials.
    private func authenticate(_ header: String, scope: String) throws(UrunError) {
        guard let challenge = Challenge.parse(header) else {
            throw .invalid("\(registry): authentication required, in a form urun does not know (\(printable(header, limit: 80)))")
        }
        switch challenge.scheme {
        case "basic":
            guard credentials != nil else { throw .invalid("\(registry): authentication required: run urun login \(registry)") }
            basic = true
        case "bearer":
            guard let realm = challenge.parameters["realm"], realm.hasPrefix("https://") || realm.hasPrefix("http://") else {
                throw .invalid("\(registry): the Bearer challenge names no http(s) realm")
            }
            var query: [String] = []
            if let service = challenge.parameters["service"] { query.append("service=" + Self.percentEncode(service)) }
            // Several scopes (push, and pull from a repository to mount from) are several parameters.
            for part in scope.split(separator: " ") { query.append("scope=" + Self.percentEncode(String(part))) }
            let url = realm + (realm.contains("?") ? "&" : "?") + query.joined(separator: "&")
            var request = HTTPRequest(url: url, limit: 1 << 20)
            if let credentials { request.headers.append(("Authorization", credentials.basicAuthorization)) }
            let response: HTTPResponse
            switch transport.perform([request])[0] {
            case .success(let r): response = r
            case .failure(let failure): throw .invalid("\(registry): the token service \(Self.origin(of: realm)): \(failure.message)")
            }
            guard response.status == 200 else {
                if response.status == 401 || response.status == 403 {
                    throw .invalid(credentials == nil
                        ? "\(registry): authentication required: run urun login \(registry)"
                        : "\(registry): the token service refused your credentials (status \(response.status)): run urun login \(registry) again")
                }
                throw .invalid("\(registry): the token service answered status \(response.status)\(RegistryError.detail(response.body))")
            }
            guard let json = try? JSON(parsing: response.body),
                let token = json["token"]?.string ?? json["access_token"]?.string, !token.isEmpty
            else { throw .invalid("\(registry): the token service's answer has no token") }
            // Kept a little shorter than its lifetime (60 s when the service does not say).
            let lifetime = json["expires_in"]?.int.map { max(1, min($0, 86_400)) } ?? 60
            tokens[scope] = (token, monotonicSeconds() + Double(lifetime) * 0.9)
        default:
            throw .invalid("\(registry): authentication by \(printable(challenge.scheme, limit: 20)) is not supported")
        }
    }

    static func resolve(_ location: String, against url: String) -> String {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
        if location.hasPrefix("/") { return origin(of: url) + location }
        let directory = url.split(separator: "?", maxSplits: 1)[0]
        return String(directory[..<(directory.lastIndex(of: "/") ?? directory.endIndex)]) + "/" + location
    }

    /// `scheme://host[:port]` of a URL.
    static func origin(of url: String) -> String {
        let bytes = Array(url.utf8)
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), bytes[colon...].starts(with: Array("://".utf8)) else {
            return url
        }
        let hostStart = colon + 3
        let hostEnd = bytes[hostStart...].firstIndex { (c: UInt8) -> Bool in
            c == UInt8(ascii: "/") || c == UInt8(ascii: "?") || c == UInt8(ascii: "#")
        } ?? bytes.count
        return String(decoding: bytes[..<hostEnd], as: UTF8.self).lowercased()
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

/// `WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry.example"`.
struct Challenge: Equatable {
    let scheme: String
    let parameters: [String: String]

    /// The first challenge of the header (the scheme lowercased), its parameters unquoted.
    static func parse(_ header: String) -> Challenge? {
        let bytes = Array(header.utf8)
        var i = 0
        func skipSpaces() { while i < bytes.count && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 } }
        func token() -> String {
            let start = i
            while i < bytes.count, bytes[i] != 0x20, bytes[i] != 0x09, bytes[i] != UInt8(ascii: "="), bytes[i] != UInt8(ascii: ",") {
                i += 1
            }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }
        skipSpaces()
        let scheme = token().lowercased()
        guard !scheme.isEmpty else { return nil }
        var parameters: [String: String] = [:]
        while i < bytes.count {
            skipSpaces()
            while i < bytes.count && bytes[i] == UInt8(ascii: ",") { i += 1; skipSpaces() }
            let name = token().lowercased()
            skipSpaces()
            guard !name.isEmpty, i < bytes.count, bytes[i] == UInt8(ascii: "=") else { break }
            i += 1
            skipSpaces()
            var value: [UInt8] = []
            if i < bytes.count && bytes[i] == UInt8(ascii: "\"") {
                i += 1
                while i < bytes.count && bytes[i] != UInt8(ascii: "\"") {
                    if bytes[i] == UInt8(ascii: "\\") && i + 1 < bytes.count { i += 1 }
                    value.append(bytes[i])
                    i += 1
                }
                i += 1
            } else {
                let start = i
                while i < bytes.count && bytes[i] != UInt8(ascii: ",") && bytes[i] != 0x20 { i += 1 }
                value = Array(bytes[start..<i])
            }
            parameters[name] = String(decoding: value, as: UTF8.self)
        }
        return Challenge(scheme: scheme, parameters: parameters)
    }
}

/// The distribution-spec error body: `{"errors": [{"code": ..., "message": ...}]}`.
enum RegistryError {
    /// ": CODE: message" from a body, or "" when it has none.
    static func detail(_ body: [UInt8]) -> String {
        guard let json = try? JSON(parsing: body), let first = json["errors"]?.array?.first else { return "" }
        let parts = [first["code"]?.string, first["message"]?.string].compactMap { $0 }.filter { !$0.isEmpty }
        return parts.isEmpty ? "" : ": " + printable(parts.joined(separator: ": "), limit: 200)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
