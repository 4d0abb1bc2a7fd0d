import Glibc
import UrunKernel
import UrunRootfs
import UrunUserNS

/// Named volumes, as docker keeps them: `<data>/volumes/NAME/_data`, a
/// directory of the user's that outlives the containers using it (a build
/// cache kept between steps). Made by `urun volume create`, or by the first
/// `-v NAME:/dst` that names it.
public struct VolumeStore: Sendable {
    public let directory: String

    public init(paths: UrunPaths) {
        directory = paths.data + "/volumes"
    }

    public func path(_ name: String) -> String { directory + "/" + name + "/_data" }

    public func exists(_ name: String) -> Bool { fileStatus(path(name)).map(isDirectory) ?? false }

    /// Every volume's name, sorted.
    public func names() -> [String] {
        ((try? directoryEntries(directory)) ?? []).filter { Volume.isName($0) && exists($0) }.sorted()
    }

    /// Makes the volume (a no-op when it exists); returns whether it was made now.
    @discardableResult
    public func create(_ name: String) throws(UrunError) -> Bool {
        guard Volume.isName(name) else { throw .usage("\(printable(name)): a volume name is a letter or digit, then letters, digits, _ . -") }
        if exists(name) { return false }
        try makeDirectories(directory, mode: 0o700)
        let own = directory + "/" + name
        if mkdir(own, 0o700) != 0 && errno != EEXIST { throw .kernel(.createContainerDir, path: own, .current) }
        // The container's root owns it (it is the caller): 0755 as docker makes it.
        if mkdir(path(name), 0o755) != 0 {
            if errno == EEXIST { return false }
            throw .kernel(.createContainerDir, path: path(name), .current)
        }
        return true
    }

    /// The spec's named volumes bound from their directories, each made on first use.
    public func resolve(_ spec: inout ContainerSpec) throws(UrunError) {
        spec.volumes = try spec.volumes.map { (volume) throws(UrunError) -> Volume in
            guard volume.named else { return volume }
            try create(volume.source)
            var resolved = Volume(source: path(volume.source), target: volume.target, readOnly: volume.readOnly)
            resolved.populate = volume.populate
            resolved.chownToUser = volume.chownToUser
            return resolved
        }
    }

    /// The names of the volumes kept containers bind.
    public func inUse(by containers: [ContainerRecord]) -> Set<String> {
        var used = Set<String>()
        for record in containers {
            for volume in record.spec.volumes where volume.source.hasPrefix(directory + "/") && volume.source.hasSuffix("/_data") {
                used.insert(baseName(of: parentDirectory(of: volume.source)))
            }
        }
        return used
    }

    /// Removes a volume and what it holds (files of a container's other users too).
    public func remove(_ name: String) throws(UrunError) {
        guard Volume.isName(name), exists(name) else { throw .invalid("no such volume: \(printable(name))") }
        try removeTreeAsOwner(directory + "/" + name)
    }

    /// When it was made (its directory's change time).
    public func created(_ name: String) -> Timestamp? {
        fileStatus(path(name)).map { Timestamp(seconds: Int($0.st_ctim.tv_sec), nanoseconds: Int($0.st_ctim.tv_nsec)) }
    }
}
