import CUrunSyscalls
import Glibc
import UrunKernel
import UrunUserNS

/// The containers of one user, on disk:
///
///     <data>/containers/<id>/config.json     what it is (persistent)
///                            upper, work     its writable layer
///                            container.log   its output, one JSON line per chunk
///     <runtime>/containers/<id>/state.json   how it is (running, pid, exit code)
///                               lock         serialises verbs on this container
///                               attach.sock  its supervisor's attach socket
///
/// A container is running while its supervisor (the foreground urun, or the
/// monitor of a detached one) holds an flock on its data directory: liveness
/// never rests on a pid alone. Files are replaced atomically.
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

    public func record(_ id: String) throws(UrunError) -> ContainerRecord {
        let text = try readText(directory(id) + "/config.json")
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
        try writeFileAtomically(directory(record.id) + "/config.json", record.json.pretty() + "\n")
    }

    /// The container's state, corrected when its supervisor is gone: a
    /// "running" container whose lock nobody holds was orphaned (its monitor
    /// was killed), so it has stopped, with an unknown exit status.
    public func state(_ id: String) -> ContainerState {
        var state = ContainerState()
        if let text = try? readText(runtime(id) + "/state.json"), let json = try? JSON(parsing: text) {
            state = ContainerState(json: json)
        }
        if state.status == .running || state.status == .paused, !isSupervised(id) {
            state.status = .exited
            state.exitCode = nil
            state.pid = 0
            if state.finishedAt == nil { state.finishedAt = .now() }
        }
        return state
    }

    public func save(_ state: ContainerState, for id: String) throws(UrunError) {
        try makeDirectories(runtime(id), mode: 0o700)
        try writeFileAtomically(runtime(id) + "/state.json", state.json.serialized() + "\n")
    }

    /// Whether a supervisor holds the container's lock right now.
    public func isSupervised(_ id: String) -> Bool {
        !ContainerDirectory.isAbandoned(id: id, in: dataDirectory)
    }

    /// Every kept container (those with a config.json), oldest first.
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

    /// Removes everything of a stopped container.
    public func remove(_ id: String) throws(UrunError) {
        try removeTree(runtime(id))
        try removeTreeAsOwner(directory(id))
    }

    // MARK: locks

    /// An exclusive lock on one container's verbs (start, stop, rm...),
    /// released when the returned descriptor is closed.
    public func lockVerbs(_ id: String) throws(UrunError) -> CInt {
        try makeDirectories(runtime(id), mode: 0o700)
        let path = runtime(id) + "/lock"
        let fd = try sys(.createContainerDir, path: path) { urun_open_mode(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        try sys(.createContainerDir, path: path) { flock(fd, LOCK_EX) }
        return fd
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
            guard Self.isValidName(requested) else {
                throw .usage("invalid container name \"\(requested)\": use letters, digits, and _ . - (not first)")
            }
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

    /// docker's rule: [a-zA-Z0-9][a-zA-Z0-9_.-]*
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCII, first.properties.isAlphabetic || ("0"..."9").contains(first) else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)) }
    }
}
