import CUrunSyscalls
import Glibc
import UrunKernel
import UrunUserNS

/// The containers of one user, on disk:
///
///     <data>/containers/<id>/config.json     what it is (persistent)
///                            removing.json   config.json, renamed when `rm` begins
///                            upper, work     its writable layer
///                            container.log   its output, one JSON line per chunk
///     <runtime>/containers/<id>/state.json   how it is (running, pid, exit code)
///                               lock         serialises verbs on this container
///                               attach.sock  its supervisor's attach socket
///
/// A container is running while its supervisor (the foreground urun, or the
/// monitor of a detached one) holds an flock on its data directory: liveness
/// never rests on a pid alone. Files are replaced atomically.
///
/// Removal first renames config.json to removing.json (one atomic step that
/// needs no free space): from then on nothing starts the container, `ps -a`
/// shows it as being removed, and an `rm` that was killed half-way is
/// finished by the next one.
public struct ContainerStore: Sendable {
    public let paths: UrunPaths

    public init(paths: UrunPaths) {
        self.paths = paths
    }

    public var dataDirectory: String { paths.containers }
    public var runtimeDirectory: String { paths.runtime + "/containers" }
    public func directory(_ id: String) -> String { dataDirectory + "/" + id }
    public func runtime(_ id: String) -> String { runtimeDirectory + "/" + id }
    public func logFile(_ id: String) -> String { directory(id) + "/container.log" }
    public func attachSocket(_ id: String) -> String { runtime(id) + "/attach.sock" }

    // MARK: records and state

    static let configFile = "config.json"
    static let removingFile = "removing.json"

    public func record(_ id: String) throws(UrunError) -> ContainerRecord {
        var path = directory(id) + "/" + Self.configFile
        if access(path, F_OK) != 0 && errno == ENOENT { path = directory(id) + "/" + Self.removingFile }
        let text = try readText(path)
        do {
            return try ContainerRecord(json: try JSON(parsing: text))
        } catch let error as JSON.ParseError {
            throw .invalid("\(directory(id))/config.json: \(error)")
        } catch let error as UrunError {
            throw error
        } catch {
            throw .invalid("\(directory(id))/config.json: \(error)")
        }
    }

    public func save(_ record: ContainerRecord) throws(UrunError) {
        try writeFileAtomically(directory(record.id) + "/" + Self.configFile, record.json.pretty() + "\n")
    }

    /// Whether `rm` has begun removing the container.
    public func isBeingRemoved(_ id: String) -> Bool {
        access(directory(id) + "/" + Self.removingFile, F_OK) == 0
    }

    /// Whether the container still exists (kept, or being removed).
    public func exists(_ id: String) -> Bool {
        access(directory(id) + "/" + Self.configFile, F_OK) == 0 || isBeingRemoved(id)
    }

    /// Marks the container as being removed (idempotent). Call with its verb lock held.
    public func markRemoving(_ id: String) throws(UrunError) {
        let config = directory(id) + "/" + Self.configFile
        if rename(config, directory(id) + "/" + Self.removingFile) != 0 && !(errno == ENOENT && isBeingRemoved(id)) {
            throw .kernel(.removeContainerDir, path: config, .current)
        }
    }

    /// The container's state, corrected when its supervisor is gone: a
    /// "running" container whose lock nobody holds was orphaned (its monitor
    /// was killed), so it has stopped, with an unknown exit status.
    public func state(_ id: String) -> ContainerState {
        var state = ContainerState()
        if let text = try? readText(runtime(id) + "/state.json"), let json = try? JSON(parsing: text) {
            state = ContainerState(json: json)
        }
        if state.status.isActive, !isSupervised(id) {
            state.status = .exited
            state.exitCode = nil
            state.pid = 0
            if state.finishedAt == nil { state.finishedAt = .now() }
        }
        if isBeingRemoved(id) { state.status = .removing }
        return state
    }

    public func save(_ state: ContainerState, for id: String) throws(UrunError) {
        try makeDirectories(runtime(id), mode: 0o700)
        try writeFileAtomically(runtime(id) + "/state.json", state.json.serialized() + "\n")
    }

    /// `urun kill` with a fatal signal: the monitor does not restart the
    /// exit it causes; the next start forgets it.
    public func markStoppedByUser(_ id: String) {
        try? writeFile(runtime(id) + "/stopped-by-user", "", mode: 0o600)
    }

    public func wasStoppedByUser(_ id: String) -> Bool { access(runtime(id) + "/stopped-by-user", F_OK) == 0 }

    public func forgetStoppedByUser(_ id: String) { unlink(runtime(id) + "/stopped-by-user") }

    /// Whether a supervisor holds the container's lock right now.
    public func isSupervised(_ id: String) -> Bool {
        !ContainerDirectory.isAbandoned(id: id, in: dataDirectory)
    }

    /// Every kept container (those with a config.json, or being removed), oldest first.
    public func all() -> [ContainerRecord] {
        let ids = (try? directoryEntries(dataDirectory)) ?? []
        return ids.filter { $0.count == 64 }.compactMap { try? record($0) }.sorted { $0.created < $1.created }
    }

    /// A container by name, by id, or by an unambiguous prefix of its id.
    public func resolve(_ reference: String) throws(UrunError) -> ContainerRecord {
        let records = all()
        if let byName = records.first(where: { $0.name == reference }) { return byName }
        let matches = records.filter { $0.id.hasPrefix(reference.lowercased()) }
        guard !reference.isEmpty, !matches.isEmpty else { throw .invalid("No such container: \(reference)") }
        guard matches.count == 1 else {
            throw .invalid("multiple containers match \(reference): \(matches.map { String($0.id.prefix(12)) }.joined(separator: ", "))")
        }
        return matches[0]
    }

    /// Removes everything of a stopped container that `markRemoving` marked:
    /// its runtime state, then its data but the mark, then the mark and the
    /// directory, so that until the end `ps -a` shows it and `rm` can finish it.
    public func remove(_ id: String) throws(UrunError) {
        // Renamed away first: a verb racing this one (start, restart) makes
        // runtime/<id> and its lock anew, finds the container gone and removes
        // its own directory, instead of filling the one being emptied
        // (ENOTEMPTY). A removal killed midway leaves the renamed one: the next finishes it.
        let removing = runtime(id) + ".removing"
        try removeTree(removing)
        if rename(runtime(id), removing) != 0 && errno != ENOENT {
            throw .kernel(.removeContainerDir, path: runtime(id), .current)
        }
        try removeTree(removing)
        let path = directory(id)
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            throw .kernel(.removeContainerDir, path: path, .current)
        }
        defer { closeQuietly(fd) }
        for entry in try directoryListing(fd, path: path) where entry.bytes != Array(Self.removingFile.utf8) {
            try removeEntryAsOwner(entry, in: fd, display: path + "/" + entry.printableName)
        }
        try removeTree(path)
    }

    // MARK: locks

    /// An exclusive lock on one container's verbs (start, stop, rm...),
    /// released when the returned descriptor is closed. Without `wait`, nil
    /// when another urun holds it.
    public func lockVerbs(_ id: String, wait: Bool = true) throws(UrunError) -> CInt? {
        try makeDirectories(runtime(id), mode: 0o700)
        let path = runtime(id) + "/lock"
        let fd = try sys(.createContainerDir, path: path) { urun_open_mode(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        if flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) != 0 {
            let error = Errno.current
            closeQuietly(fd)
            if error == .wouldBlock && !wait { return nil }
            throw .kernel(.createContainerDir, path: path, error)
        }
        return fd
    }

    /// The verb lock, waited for.
    public func lockVerbs(_ id: String) throws(UrunError) -> CInt {
        try lockVerbs(id, wait: true)!
    }

    /// The lock that guards names while a container is created.
    public func lockNames() throws(UrunError) -> CInt {
        try makeDirectories(dataDirectory, mode: 0o700)
        let path = dataDirectory + "/.names.lock"
        let fd = try sys(.createContainerDir, path: path) { urun_open_mode(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        try sys(.createContainerDir, path: path) { flock(fd, LOCK_EX) }
        return fd
    }

    // MARK: names

    /// A free name: `requested` if given and free, else a generated one.
    /// Call with the names lock held.
    public func name(requested: String?) throws(UrunError) -> String {
        let taken = Set(all().map(\.name))
        if let requested {
            try Self.validate(name: requested)
            guard !taken.contains(requested) else {
                throw .invalid("the container name \"\(requested)\" is already in use; remove that container or choose another name")
            }
            return requested
        }
        for attempt in 0..<100 {
            let name = ContainerNames.random(suffix: attempt >= 50)
            if !taken.contains(name) { return name }
        }
        return "urun_" + randomHex(bytes: 6)
    }

    /// A usage error unless `name` is a valid container name.
    public static func validate(name: String) throws(UrunError) {
        guard isValidName(name) else {
            throw .usage("invalid container name \"\(printable(name))\": use 1 to \(maxNameLength) letters, digits, and _ . - (not first)")
        }
    }

    /// A name fits in a file name and a terminal line.
    public static let maxNameLength = 128

    /// docker's rule: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most `maxNameLength` long.
    public static func isValidName(_ name: String) -> Bool {
        guard name.utf8.count <= maxNameLength else { return false }
        guard let first = name.unicodeScalars.first, first.isASCII, first.properties.isAlphabetic || ("0"..."9").contains(first) else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)) }
    }
}
