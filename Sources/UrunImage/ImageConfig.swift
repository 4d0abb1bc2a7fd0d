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
    public var labels: [String: String] = [:]
    /// docker's Healthcheck object as the image has it (UrunContainer reads it).
    public var healthcheck: JSON?
    /// The image's history entries, as they are (commit adds one).
    public var history: [JSON] = []
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
        for (key, value) in config?["Labels"]?.members ?? [] { labels[key] = value.string ?? "" }
        healthcheck = config?["Healthcheck"].flatMap { $0.members == nil ? nil : $0 }
        history = json["history"]?.array ?? []
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
        if !labels.isEmpty { config["Labels"] = .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }) }
        if let healthcheck { config["Healthcheck"] = healthcheck }
        var object = JSON.object([
            ("config", config), ("rootfs", .object([("diff_ids", .array(diffIDs.map { .string("sha256:" + $0) }))])),
        ])
        if let os { object["os"] = .string(os) }
        if let architecture { object["architecture"] = .string(architecture) }
        if let variant { object["variant"] = .string(variant) }
        if let created { object["created"] = .string(created) }
        if !history.isEmpty { object["history"] = .array(history) }
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

extension ImageConfig {
    /// Instructions `commit --change` takes, as docker's: CMD, ENTRYPOINT, ENV,
    /// WORKDIR, USER, EXPOSE, LABEL, STOPSIGNAL, HEALTHCHECK.
    public static let changeInstructions = ["CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "EXPOSE", "LABEL", "STOPSIGNAL", "HEALTHCHECK"]

    /// Applies one Dockerfile-style instruction. CMD and ENTRYPOINT take the
    /// JSON form (`CMD ["nginx", "-g", "daemon off;"]`) or the shell form
    /// (`CMD nginx -g 'daemon off;'`, run by /bin/sh -c).
    public mutating func apply(change text: String) throws(UrunError) {
        let trimmed = text.trimmingWhitespace()
        let keyword = String(trimmed.prefix { $0 != " " && $0 != "\t" && $0 != "=" }).uppercased()
        let argument = String(trimmed.dropFirst(keyword.count)).trimmingWhitespace()
        func command() throws(UrunError) -> [String] {
            if argument.hasPrefix("[") {
                guard let parsed = try? JSON(parsing: argument), let words = parsed.strings else {
                    throw .usage("--change \(printable(text)): the JSON form is an array of strings")
                }
                return words
            }
            return argument.isEmpty ? [] : ["/bin/sh", "-c", argument]
        }
        /// KEY=VALUE pairs (several, values quoted as needed), or the old `KEY VALUE`.
        func pairs() throws(UrunError) -> [(String, String)] {
            if !argument.contains("="), let space = argument.firstIndex(of: " ") {
                return [(String(argument[..<space]), String(argument[argument.index(after: space)...]).trimmingWhitespace())]
            }
            var result: [(String, String)] = []
            for word in Self.words(argument) {
                guard let equals = word.firstIndex(of: "="), equals != word.startIndex else {
                    throw .usage("--change \(printable(text)): expected KEY=VALUE")
                }
                result.append((String(word[..<equals]), String(word[word.index(after: equals)...])))
            }
            return result
        }
        switch keyword {
        case "CMD": cmd = try command()
        case "ENTRYPOINT":
            entrypoint = try command()
            cmd = nil  // as in a Dockerfile: a new entrypoint drops the inherited Cmd
        case "ENV":
            for (key, value) in try pairs() {
                env.removeAll { $0.hasPrefix(key + "=") }
                env.append(key + "=" + value)
            }
        case "WORKDIR":
            guard argument.hasPrefix("/") else { throw .usage("--change \(printable(text)): WORKDIR needs an absolute path") }
            workingDir = argument
        case "USER": user = argument.isEmpty ? nil : argument
        case "EXPOSE":
            for port in Self.words(argument) {
                let full = port.contains("/") ? port : port + "/tcp"
                guard let number = Int(full.split(separator: "/")[0]), (1...65535).contains(number) else {
                    throw .usage("--change \(printable(text)): \(printable(port)) is not a port")
                }
                if !exposedPorts.contains(full) { exposedPorts.append(full) }
            }
            exposedPorts.sort()
        case "LABEL": for (key, value) in try pairs() { labels[key] = value }
        case "STOPSIGNAL": stopSignal = argument
        case "HEALTHCHECK": healthcheck = try Self.healthcheck(argument, change: text)
        default:
            throw .usage("--change \(printable(text)): expected one of \(Self.changeInstructions.joined(separator: ", "))")
        }
    }

    /// `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--retries=N] CMD command`
    /// or `HEALTHCHECK NONE`, as docker's Healthcheck object (durations in nanoseconds).
    static func healthcheck(_ argument: String, change text: String) throws(UrunError) -> JSON {
        if argument.uppercased() == "NONE" { return .object([("Test", .array([.string("NONE")]))]) }
        var rest = Substring(argument)
        var object = JSON.object([])
        while rest.hasPrefix("--") {
            let option = rest.prefix { $0 != " " && $0 != "\t" }
            rest = rest.dropFirst(option.count).drop { $0 == " " || $0 == "\t" }
            let parts = option.dropFirst(2).split(separator: "=", maxSplits: 1).map(String.init)
            let keys = ["interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod", "retries": "Retries"]
            guard parts.count == 2, let key = keys[parts[0]] else {
                throw .usage("--change \(printable(text)): HEALTHCHECK takes --interval, --timeout, --start-period and --retries")
            }
            if key == "Retries" {
                guard let retries = Int(parts[1]), (1...1_000_000).contains(retries) else { throw .usage("--change \(printable(text)): --retries expects 1 to 1000000") }
                object[key] = .int(retries)
            } else {
                guard let ms = goDurationMilliseconds(parts[1], limit: 366 * 86_400_000) else {
                    throw .usage("--change \(printable(text)): --\(parts[0]) expects a duration such as 30s")
                }
                object[key] = .int(Int64(ms) * 1_000_000)
            }
        }
        guard rest.uppercased().hasPrefix("CMD") else { throw .usage("--change \(printable(text)): expected HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE") }
        let command = String(rest.dropFirst(3)).trimmingWhitespace()
        if command.hasPrefix("[") {
            guard let parsed = try? JSON(parsing: command), let words = parsed.strings, !words.isEmpty else {
                throw .usage("--change \(printable(text)): the JSON form is an array of strings")
            }
            object["Test"] = .array(([JSON.string("CMD")] + words.map(JSON.string)))
        } else {
            guard !command.isEmpty else { throw .usage("--change \(printable(text)): HEALTHCHECK CMD needs a command") }
            object["Test"] = .array([.string("CMD-SHELL"), .string(command)])
        }
        return object
    }

    /// Words split at blanks, with "double" and 'single' quotes kept together (and removed).
    static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        for c in text {
            if let open = quote {
                if c == open { quote = nil } else { current.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
                inWord = true
            } else if c == " " || c == "\t" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(c)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
