import UrunKernel

/// An image in a registry, named as docker names it: `alpine` is
/// `docker.io/library/alpine:latest`; `host:port/ns/name:tag`,
/// `name@sha256:...` and `localhost/name` name other registries, tags and
/// digests. A first component is a registry when it has a dot or a colon or
/// is `localhost`, as in docker (short names always mean Docker Hub: urun has
/// no search list, so a name never silently resolves to another registry).
public struct ImageReference: Equatable, Sendable, CustomStringConvertible {
    /// As written in names: `docker.io`, `127.0.0.1:5000`.
    public let registry: String
    /// `library/alpine`, `ns/name`.
    public let repository: String
    public let tag: String?
    /// `sha256:<64 hex>`.
    public let digest: String?

    public init(registry: String, repository: String, tag: String?, digest: String?) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Parses `text` as docker does; nil with the reason when it is not a reference.
    public static func parse(_ text: String) -> Result<ImageReference, ReferenceError> {
        guard !text.isEmpty, text.utf8.count <= 512 else { return .failure(.init("an image name of 1 to 512 characters")) }
        var rest = Substring(text)
        var digest: String?
        if let at = rest.firstIndex(of: "@") {
            let value = String(rest[rest.index(after: at)...])
            guard Self.isDigest(value) else { return .failure(.init("\(value) is not a digest (sha256: and 64 lowercase hex digits)")) }
            digest = value
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let value = String(rest[rest.index(after: colon)...])
            guard Self.isTag(value) else {
                return .failure(.init("\"\(printable(value))\" is not a tag (letters, digits, _ . -, at most 128, not starting with . or -)"))
            }
            tag = value
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var registry = "docker.io"
        if components.count > 1, let first = components.first,
            first.contains(".") || first.contains(":") || first == "localhost"
        {
            guard Self.isRegistry(first) else { return .failure(.init("\"\(printable(first))\" is not a registry host[:port]")) }
            registry = first == "index.docker.io" ? "docker.io" : first
            components.removeFirst()
        }
        guard !components.isEmpty, components.allSatisfy(Self.isPathComponent) else {
            return .failure(.init("\"\(printable(String(rest)))\" is not a repository name (lowercase letters, digits and . _ - between them, components separated by /)"))
        }
        if registry == "docker.io" && components.count == 1 { components.insert("library", at: 0) }
        let repository = components.joined(separator: "/")
        guard repository.utf8.count + registry.utf8.count < 256 else { return .failure(.init("a name longer than 255 characters")) }
        return .success(ImageReference(registry: registry, repository: repository, tag: tag ?? (digest == nil ? "latest" : nil), digest: digest))
    }

    public struct ReferenceError: Error, Sendable {
        public let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// The full name: `docker.io/library/alpine:latest`, `host/name@sha256:...`.
    public var description: String {
        var text = registry + "/" + repository
        if let tag { text += ":" + tag }
        if let digest { text += "@" + digest }
        return text
    }

    /// What the manifest is asked for by: the digest when there is one.
    public var manifestReference: String { digest ?? tag ?? "latest" }

    /// The host the API is served from (Docker Hub's differs from its name).
    public var apiHost: String { registry == "docker.io" ? "registry-1.docker.io" : registry }

    /// Registries that plain HTTP is allowed for, as docker allows it: this
    /// machine's loopback addresses.
    public var isLoopback: Bool {
        let host = Self.host(of: registry)
        return host == "localhost" || host.hasPrefix("127.") || host == "[::1]"
    }

    static func host(of registry: String) -> String {
        if registry.hasPrefix("["), let end = registry.firstIndex(of: "]") { return String(registry[...end]) }
        return String(registry.split(separator: ":", maxSplits: 1).first ?? "")
    }

    static func isDigest(_ text: String) -> Bool {
        guard text.hasPrefix("sha256:") else { return false }
        let hex = text.utf8.dropFirst(7)
        return hex.count == 64 && hex.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    static func isTag(_ text: String) -> Bool {
        guard let first = text.utf8.first, text.utf8.count <= 128, first != UInt8(ascii: "."), first != UInt8(ascii: "-") else {
            return false
        }
        return text.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`: separators only between alphanumerics.
    static func isPathComponent(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last, isLowerAlphanumeric(first), isLowerAlphanumeric(last) else {
            return false
        }
        var i = 0
        while i < bytes.count {
            if isLowerAlphanumeric(bytes[i]) {
                i += 1
                continue
            }
            var j = i
            while j < bytes.count && !isLowerAlphanumeric(bytes[j]) { j += 1 }
            let separator = bytes[i..<j]
            let allowed = separator.elementsEqual([UInt8(ascii: ".")]) || separator.elementsEqual([UInt8(ascii: "_")])
                || separator.elementsEqual([UInt8(ascii: "_"), UInt8(ascii: "_")]) || separator.allSatisfy { $0 == UInt8(ascii: "-") }
            guard allowed else { return false }
            i = j
        }
        return true
    }

    /// `host[:port]`: letters, digits, dots and dashes, or a bracketed IPv6 address.
    static func isRegistry(_ text: String) -> Bool {
        var host = Substring(text)
        if text.hasPrefix("[") {
            guard let end = text.firstIndex(of: "]") else { return false }
            let inside = text[text.index(after: text.startIndex)..<end]
            guard !inside.isEmpty, inside.utf8.allSatisfy({ isHex($0) || $0 == UInt8(ascii: ":") }) else { return false }
            host = text[text.index(after: end)...]
            if host.isEmpty { return true }
            guard host.hasPrefix(":") else { return false }
            return isPort(host.dropFirst())
        }
        if let colon = host.firstIndex(of: ":") {
            guard isPort(host[host.index(after: colon)...]) else { return false }
            host = host[..<colon]
        }
        // Labels of letters, digits and inner dashes, joined by dots.
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return host.utf8.count <= 253 && labels.allSatisfy { label in
            guard let first = label.utf8.first, let last = label.utf8.last, isAlphanumeric(first), isAlphanumeric(last) else {
                return false
            }
            return label.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        }
    }

    private static func isPort(_ text: Substring) -> Bool {
        guard let port = Int(text), text.utf8.count <= 5 else { return false }
        return (1...65535).contains(port)
    }
}

private func isLowerAlphanumeric(_ c: UInt8) -> Bool { (0x61...0x7A).contains(c) || (0x30...0x39).contains(c) }
private func isAlphanumeric(_ c: UInt8) -> Bool { isLowerAlphanumeric(c) || (0x41...0x5A).contains(c) }
private func isHex(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) || (0x61...0x66).contains(c) || (0x41...0x46).contains(c) }
