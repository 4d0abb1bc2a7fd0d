import CUrunSyscalls
import Glibc
import UrunImage
import UrunKernel
import UrunRegistry

/// When `run` and `create` pull, as podman's --pull: `missing` (the default)
/// pulls an image the cache lacks, `always` every time, `newer` when the
/// registry is reachable (a failure falls back to the cached image), `never`
/// not at all.
public enum PullPolicy: String, Sendable, CaseIterable {
    case missing, always, never, newer
}

/// How to reach registries: --tls-verify, --cert-dir, --authfile.
public struct RegistryOptions: Sendable {
    public var policy = PullPolicy.missing
    /// nil: verify, and allow plain HTTP for a loopback registry only.
    public var tlsVerify: Bool?
    public var certDirectory: String?
    public var authFile: String?
    /// false: a name missing from the cache is not pulled under `missing`
    /// (it may be a flag's value typed without `=`: `--explain xml`).
    public var pullsMissing = true

    public init() {}
}

/// Images from registries: the network work runs in urun-transfer (its own
/// process, dynamically linked against libcurl), which writes an OCI layout
/// under the cache's tmp/; urun unpacks that like any layout and removes it.
public struct RegistryTransfer {
    public let store: ImageStore
    public let options: RegistryOptions

    public init(store: ImageStore, options: RegistryOptions) {
        self.store = store
        self.options = options
    }

    /// The reference `text` names, or nil: a file or directory that exists,
    /// or one of skopeo's local transports, is never a reference (an existing
    /// path wins); `docker://` marks a reference explicitly.
    public static func reference(_ text: String) -> ImageReference? {
        if text.hasPrefix(ImageStore.registrySource) {
            return try? ImageReference.parse(String(text.dropFirst(ImageStore.registrySource.count))).get()
        }
        if fileStatus(text, followLinks: true) != nil || ImageStore.hasTransportPrefix(text) { return nil }
        return try? ImageReference.parse(text).get()
    }

    /// The image for `text`, pulled as the policy says.
    public func image(for text: String, platform: String?, showProgress: Bool) throws(UrunError) -> Image {
        // Parsed only where a pull may follow: the warm start of a cached image or archive does not pay for it.
        let pullsFirst = options.policy == .always || options.policy == .newer || text.hasPrefix(ImageStore.registrySource)
        if pullsFirst, let reference = Self.reference(text) {
            do {
                return try pull(reference, platform: platform, showProgress: showProgress)
            } catch {
                guard options.policy == .newer, let image = try? store.image(for: reference.description, platform: platform) else {
                    throw error
                }
                writeQuietly(2, "urun: \(printableMessage(error.description)); using the cached image\n")
                return image
            }
        }
        do {
            return try store.image(for: text, platform: platform, showProgress: showProgress)
        } catch .noSuchImage(let name) {
            guard let reference = Self.reference(text), options.pullsMissing || options.policy != .missing else {
                throw .noSuchImage(name)
            }
            // A name as the registry spells it (127.0.0.1:5000/app is app:latest there).
            if let record = store.find(reference.description) {
                return try store.image(for: record.id, platform: platform, showProgress: showProgress)
            }
            guard options.policy != .never else {
                throw .invalid("image \(printable(text)): not in the cache, and --pull=never")
            }
            do {
                return try pull(reference, platform: platform, showProgress: showProgress)
            } catch {
                throw .imageUnavailable(text, reason: error.description)
            }
        }
    }

    /// `urun pull`: fetches the image and unpacks what the cache lacks.
    public func pull(_ reference: ImageReference, platform: String?, showProgress: Bool) throws(UrunError) -> Image {
        try store.prepareDirectories()
        let (layout, lock) = try store.makeTemporary("pull")
        defer {
            try? removeTree(layout)
            closeQuietly(lock)
        }
        var request = TransferRequest(command: .pull, target: reference.description)
        request.platform = platform ?? Platform.native
        request.layout = layout
        request.blobs = store.blobsDirectory
        request.layers = store.layersDirectory
        request.layerSuffix = store.mapping.map { "@" + $0.identity } ?? ""
        request.progress = showProgress
        try Self.transfer(request, options)
        return try store.importPulled(layout: layout, name: reference.description, platform: platform, showProgress: showProgress)
    }

    /// `urun push`: the image written as an OCI layout (a pulled image's own
    /// blobs; layers from the cache otherwise), which urun-transfer sends.
    public func push(_ record: ImageRecord, to reference: ImageReference) throws(UrunError) {
        try store.prepareDirectories()
        let (layout, lock) = try store.makeTemporary("push")
        defer {
            try? removeTree(layout)
            closeQuietly(lock)
        }
        try store.writeLayout([(try store.blobs(of: record), [reference.description])], into: layout)
        var request = TransferRequest(command: .push, target: reference.description)
        request.layout = layout
        // Pulled from this registry: its blobs can be mounted from where they came from.
        if let source = record.source, source.hasPrefix(ImageStore.registrySource),
            let origin = try? ImageReference.parse(String(source.dropFirst(ImageStore.registrySource.count))).get(),
            origin.registry == reference.registry
        {
            request.mountFrom = origin.repository
        }
        try Self.transfer(request, options)
    }

    /// `urun login`: urun-transfer checks the credentials with the registry and stores them.
    public static func login(registry: String, credentials: RegistryCredentials, options: RegistryOptions) throws(UrunError) {
        var request = TransferRequest(command: .login, target: registry)
        request.credentials = credentials
        try transfer(request, options)
    }

    /// Runs urun-transfer with the request on its stdin. Its progress goes to
    /// urun's stderr; its error comes back on descriptor 3 as one line.
    static func transfer(_ request: TransferRequest, _ options: RegistryOptions) throws(UrunError) {
        var request = request
        request.tlsVerify = options.tlsVerify
        request.certDirectory = options.certDirectory
        request.authFile = options.authFile
        let program = try transferProgram()
        var input: [CInt] = [-1, -1]
        var errors: [CInt] = [-1, -1]
        try sys(.registry) { urun_pipe2(&input, O_CLOEXEC) }
        do throws(UrunError) { try sys(.registry) { urun_pipe2(&errors, O_CLOEXEC) } } catch {
            closeQuietly(input[0])
            closeQuietly(input[1])
            throw error
        }
        defer { closeQuietly(errors[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 3)
        Explain.step(.registry, "urun-transfer \(request.command.rawValue) \(request.target)")
        var child: pid_t = 0
        let rc = withCStrings([program]) { argv in posix_spawn(&child, program, &actions, nil, argv, environ) }
        closeQuietly(input[0])
        closeQuietly(errors[1])
        guard rc == 0 else {
            closeQuietly(input[1])
            throw .kernel(.registry, path: program, Errno(rawValue: rc))
        }
        // The request is small: it fits the pipe, and the child reads it all first.
        writeQuietly(input[1], request.json.serialized())
        closeQuietly(input[1])
        let message = String(decoding: (try? readAll(errors[0], limit: 1 << 16)) ?? [], as: UTF8.self).trimmingWhitespace()
        var status: CInt = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        guard status != 0 else { return }
        if !message.isEmpty { throw .invalid(message) }
        let signal = status & 0x7F
        throw .invalid("urun-transfer \(signal != 0 ? "was killed by signal \(signal)" : "failed with status \((status >> 8) & 0xFF)")")
    }

    /// urun-transfer: beside urun (a build directory, /usr/local/bin), in a
    /// libexec directory, or on PATH.
    static func transferProgram() throws(UrunError) -> String {
        var candidates: [String] = []
        if let own = executablePath() { candidates.append(parentDirectory(of: own) + "/urun-transfer") }
        candidates += ["/usr/local/libexec/urun/urun-transfer", "/usr/libexec/urun/urun-transfer"]
        if let found = candidates.first(where: { access($0, X_OK) == 0 }) { return found }
        if let found = try? lookupCommand("urun-transfer", path: environment("PATH") ?? defaultPath) { return found }
        throw .invalid("urun-transfer, which talks to registries, is not installed beside urun (\(candidates[0])): Helpers/setup installs it")
    }
}
