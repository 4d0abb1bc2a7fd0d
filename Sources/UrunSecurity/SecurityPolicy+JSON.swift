import UrunKernel

/// A kept container's policy in its config.json. A custom seccomp profile is
/// stored with its text, as docker stores it: a restart applies the profile
/// the container was created with, even if the file has changed since.
extension SecurityPolicy {
    public var json: JSON {
        var object = JSON.object([
            ("capabilities", .array(capabilities.names.map(JSON.string))),
            ("noNewPrivileges", .bool(noNewPrivileges)),
            ("privileged", .bool(privileged)),
            ("unmasked", .array(unmasked.map(JSON.string))),
        ])
        if let fakeRoot { object["fakeRoot"] = .bool(fakeRoot) }
        switch seccomp {
        case .default: object["seccomp"] = .string("default")
        case .unconfined: object["seccomp"] = .string("unconfined")
        case .profile(let source, let text):
            object["seccomp"] = .object([("source", .string(source)), ("text", .string(text))])
        }
        return object
    }

    public init(json: JSON) throws(UrunError) {
        self.init()
        if let names = json["capabilities"]?.strings {
            capabilities = try Capabilities.resolve(adding: names, dropping: ["ALL"])
        }
        noNewPrivileges = json["noNewPrivileges"]?.bool ?? true
        privileged = json["privileged"]?.bool ?? false
        unmasked = json["unmasked"]?.strings ?? []
        fakeRoot = json["fakeRoot"]?.bool
        switch json["seccomp"] {
        case .string("unconfined")?: seccomp = .unconfined
        case let profile? where profile["text"] != nil:
            seccomp = .profile(source: profile["source"]?.string ?? "config.json", text: profile["text"]?.string ?? "")
        default: seccomp = .default
        }
    }
}
