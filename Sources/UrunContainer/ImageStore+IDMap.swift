import UrunImage
import UrunKernel
import UrunUserNS

extension ImageStore {
    /// The store for containers whose ids are `mapping`: with subordinate
    /// ids, layers are unpacked in a user namespace with that map (so files
    /// keep their owners) and named by it; otherwise as the caller. Either
    /// way, what it removes it may remove inside the caller's mapping.
    public init(directory: String, mapping: IDMap?) {
        let remove: @Sendable (String) throws(UrunError) -> Void = { (path) throws(UrunError) in try removeTreeAsOwner(path) }
        guard let mapping, mapping.hasSubordinateIDs else {
            self.init(directory: directory, unpackingIn: nil, removeAsOwner: remove)
            return
        }
        self.init(
            directory: directory,
            unpackingIn: UnpackNamespace(identity: mapping.identity) { (body) throws(UrunError) in
                try runInUserNamespace(mapping, body)
            }, removeAsOwner: remove)
    }
}
