import Glibc
import UrunKernel

/// A user name and secret for one registry. Never printed, not even with --explain.
public struct RegistryCredentials: Sendable {
    public let username: String
    public let password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    var basicAuthorization: String { "Basic " + Base64.encode(Array("\(username):\(password)".utf8)) }
}

/// Credentials where podman, skopeo and docker keep them:
///
/// - `--authfile FILE`, or `REGISTRY_AUTH_FILE`: the one file read and written;
/// - otherwise written to `$XDG_RUNTIME_DIR/containers/auth.json` (containers-auth.json(5)),
///   or `~/.config/containers/auth.json` when there is no runtime directory;
/// - read from those two, then `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`,
///   whose `credHelpers` and `credsStore` name `docker-credential-*` helpers.
///
/// A file is `{"auths": {"REGISTRY": {"auth": base64("user:password")}}}`, written mode 0600.
public struct AuthFiles: Sendable {
    /// The file given with --authfile, if any.
    public let explicit: String?

    public init(explicit: String?) {
        self.explicit = explicit ?? environment("REGISTRY_AUTH_FILE").flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Where `urun login` writes.
    public var writePath: String {
        if let explicit { return explicit }
        if let runtime = environment("XDG_RUNTIME_DIR"), runtime.hasPrefix("/"), fileStatus(runtime).map(isDirectory) == true {
            return runtime + "/containers/auth.json"
        }
        return home + "/.config/containers/auth.json"
    }

    private var home: String { (try? UrunPaths.homeDirectory()) ?? "/nonexistent" }

    /// The files read, in order; the first that knows the registry wins.
    public var readPaths: [String] {
        if let explicit { return [explicit] }
        var paths = [writePath, home + "/.config/containers/auth.json"]
        if let docker = environment("DOCKER_CONFIG"), !docker.isEmpty { paths.append(docker + "/config.json") }
        paths.append(home + "/.docker/config.json")
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }

    /// The keys a registry may be stored under: its name, with a scheme, and Docker Hub's old names.
    static func keys(for registry: String) -> [String] {
        var keys = [registry, "https://" + registry, "http://" + registry]
        if registry == "docker.io" {
            keys += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "https://registry-1.docker.io"]
        }
        return keys
    }

    /// The credentials stored for `registry`, if any file or helper has them.
    public func credentials(for registry: String) throws(UrunError) -> RegistryCredentials? {
        for path in readPaths {
            guard let json = try Self.read(path) else { continue }
            let keys = Self.keys(for: registry)
            if let auths = json["auths"]?.members {
                for (key, entry) in auths where keys.contains(Self.trimmed(key)) {
                    if let encoded = entry["auth"]?.string, !encoded.isEmpty {
                        guard let decoded = Base64.decode(encoded), let text = String(validating: decoded, as: UTF8.self),
                            let colon = text.firstIndex(of: ":")
                        else { throw .invalid("\(path): auths.\(printable(key)).auth is not base64 of user:password") }
                        return RegistryCredentials(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
                    }
                }
            }
            let helper = json["credHelpers"]?.members?.first { keys.contains(Self.trimmed($0.0)) }?.1.string ?? json["credsStore"]?.string
            if let helper, !helper.isEmpty, let found = try CredentialHelper(name: helper).get(server: registry) { return found }
        }
        return nil
    }

    /// `urun login`: stores the credentials in the write file (created 0600 in a 0700 directory).
    public func store(_ credentials: RegistryCredentials, for registry: String) throws(UrunError) {
        let path = writePath
        var json = try Self.read(path) ?? .object([])
        var auths = json["auths"] ?? .object([])
        for key in Self.keys(for: registry) { auths[key] = nil }
        auths[registry] = .object([("auth", .string(Base64.encode(Array("\(credentials.username):\(credentials.password)".utf8))))])
        json["auths"] = auths
        try write(json, to: path)
    }

    /// `urun logout`: whether there was an entry to remove.
    public func remove(for registry: String) throws(UrunError) -> Bool {
        let path = writePath
        guard var json = try Self.read(path), var auths = json["auths"], let members = auths.members else { return false }
        let keys = Self.keys(for: registry)
        let found = members.contains { keys.contains(Self.trimmed($0.0)) }
        for (key, _) in members where keys.contains(Self.trimmed(key)) { auths[key] = nil }
        json["auths"] = auths
        if found { try write(json, to: path) }
        return found
    }

    /// `urun logout --all`: the write file removed.
    public func removeAll() throws(UrunError) -> Bool {
        let path = writePath
        guard fileStatus(path) != nil else { return false }
        try sys(.registry, path: path) { unlink(path) }
        return true
    }

    private static func trimmed(_ key: String) -> String {
        key.hasSuffix("/") && !key.hasSuffix("/v1/") ? String(key.dropLast()) : key
    }

    private static func read(_ path: String) throws(UrunError) -> JSON? {
        guard fileStatus(path, followLinks: true) != nil else { return nil }
        let bytes = try readFile(path, limit: 1 << 20)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return nil }
        guard let json = try? JSON(parsing: bytes), json.members != nil else {
            throw .invalid("\(path): not a credentials file (a JSON object with \"auths\")")
        }
        return json
    }

    private func write(_ json: JSON, to path: String) throws(UrunError) {
        try makeDirectories(parentDirectory(of: path), mode: 0o700, step: .registry)
        let temporary = path + ".tmp-" + randomHex(bytes: 4)
        try writeFile(temporary, json.pretty() + "\n", mode: 0o600, flags: O_CREAT | O_EXCL)
        try sys(.registry, path: path) { rename(temporary, path) }
    }
}

/// A `docker-credential-NAME` program: `get` reads the server on stdin and
/// prints `{"Username": ..., "Secret": ...}`.
struct CredentialHelper {
    let name: String

    func get(server: String) throws(UrunError) -> RegistryCredentials? {
        let program = "docker-credential-" + name
        guard let path = try? lookupCommand(program, path: environment("PATH") ?? defaultPath) else {
            throw .invalid("the credential helper \(printable(program)) named in your docker config is not installed")
        }
        var input: [CInt] = [-1, -1]
        var output: [CInt] = [-1, -1]
        guard pipe(&input) == 0, pipe(&output) == 0 else { throw .kernel(.registry, path: program, .current) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        for fd in input + output { posix_spawn_file_actions_addclose(&actions, fd) }
        var child: pid_t = 0
        let rc = withCStrings([path, "get"]) { argv in posix_spawn(&child, path, &actions, nil, argv, environ) }
        closeQuietly(input[0])
        closeQuietly(output[1])
        defer { closeQuietly(output[0]) }
        guard rc == 0 else {
            closeQuietly(input[1])
            throw .kernel(.registry, path: path, Errno(rawValue: rc))
        }
        writeQuietly(input[1], server)
        closeQuietly(input[1])
        let reply = (try? readAll(output[0], limit: 1 << 16)) ?? []
        var status: CInt = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        // Not found is a failure exit with "credentials not found" on stdout.
        guard status == 0, let json = try? JSON(parsing: reply), let user = json["Username"]?.string,
            let secret = json["Secret"]?.string
        else { return nil }
        return RegistryCredentials(username: user, password: secret)
    }
}

/// RFC 4648 base64, for Basic authorization and auth files.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let a = UInt32(bytes[i])
            let b = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let c = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let n = a << 16 | b << 8 | c
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(i + 1 < bytes.count ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(n & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Standard or URL-safe alphabet, padding optional; nil when not base64.
    static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt32] = []
        for c in text.utf8 {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(UInt32(c - UInt8(ascii: "A")))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(UInt32(c - UInt8(ascii: "a") + 26))
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(UInt32(c - UInt8(ascii: "0") + 52))
            case UInt8(ascii: "+"), UInt8(ascii: "-"): values.append(62)
            case UInt8(ascii: "/"), UInt8(ascii: "_"): values.append(63)
            case UInt8(ascii: "="): continue
            default: return nil
            }
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            let chunk = values[i..<min(i + 4, values.count)]
            var n: UInt32 = 0
            for (k, v) in chunk.enumerated() { n |= v << (18 - 6 * UInt32(k)) }
            out.append(UInt8(n >> 16 & 255))
            if chunk.count > 2 { out.append(UInt8(n >> 8 & 255)) }
            if chunk.count > 3 { out.append(UInt8(n & 255)) }
            i += 4
        }
        return out
    }
}
