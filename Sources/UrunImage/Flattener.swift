import CUrunSyscalls
import Glibc
import UrunKernel

/// Merges an image's layers into one tree, bottom up, applying their
/// whiteouts and opaque directories as deletions: for images with more
/// layers than one overlay mount can stack. Runs where the layers were
/// unpacked (inside the user namespace with subordinate ids), so owners stay.
///
/// Each layer is merged with `TreeMerge`: names as bytes (a layer may hold
/// names that are not UTF-8), one descriptor per side however deep.
struct Flattener {
    let store: ImageStore

    init(store: ImageStore) {
        self.store = store
    }

    /// `layers`: names in the store's layer directory, the top one first.
    func flatten(layers: [String], digest: String) throws(UrunError) {
        try store.prepareDirectories()
        let (temporary, root) = try store.makeTemporary("flat")
        defer { closeQuietly(root) }
        do throws(UrunError) {
            var size: UInt64 = 0
            for layer in layers.reversed() {
                let path = store.layersDirectory + "/" + layer
                let source = try sys(.unpackImage, path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
                defer { closeQuietly(source) }
                try TreeMerge(step: .unpackImage).merge(source, display: path, into: root, size: &size)
            }
            try store.install(temporary, as: digest, size: size)
        } catch {
            try? removeTree(temporary)
            throw error
        }
    }
}
