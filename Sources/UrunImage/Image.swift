import CUrunSyscalls
import Glibc
import UrunKernel

/// An image ready to be a container's root: its layers, which overlayfs
/// stacks read-only, and what its configuration says about running it.
public struct Image: Sendable {
    /// The image id (its configuration's digest, or a rootfs tarball's
    /// sha256); nil for a directory used as it is.
    public let id: String?
    public let names: [String]
    /// The read-only layers, the top one first: names inside `layerBase`, or
    /// absolute paths when it is nil.
    public let layers: [String]
    public let layerBase: String?
    /// nil for a root filesystem without one (a plain tarball or directory).
    public let config: ImageConfig?
    /// Keeps the image from removal while a container uses it.
    public let lease: ImageLease?

    public init(
        id: String?, names: [String], layers: [String], layerBase: String?, config: ImageConfig?, lease: ImageLease?
    ) {
        self.id = id
        self.names = names
        self.layers = layers
        self.layerBase = layerBase
        self.config = config
        self.lease = lease
    }

    /// The layers as absolute paths, the top one first.
    public var layerPaths: [String] { layers.map { layerBase == nil ? $0 : layerBase! + "/" + $0 } }

    /// A small file as the container will see it: from the topmost layer
    /// that has it, unless a layer above hides it with a whiteout. Read
    /// through an in-root walk of each layer, so no symlink leads out.
    public func readFile(_ path: String) -> String? {
        topmost(path) { directory, st in
            st.st_mode & S_IFMT == S_IFREG ? try? readText(baseName(of: path), at: directory) : nil
        }
    }

    /// Whether the container will see a directory at `path`.
    public func hasDirectory(_ path: String) -> Bool {
        topmost(path) { _, st in st.st_mode & S_IFMT == S_IFDIR } ?? false
    }

    /// `body` applied to the topmost layer's entry at `path` (its parent
    /// directory and its status); nil where there is none or a whiteout.
    private func topmost<T>(_ path: String, _ body: (CInt, stat) -> T?) -> T? {
        for layer in layerPaths {
            let root = open(layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard root >= 0 else { continue }
            defer { closeQuietly(root) }
            guard let directory = try? openInRoot(root, parentDirectory(of: path)) else { continue }
            defer { closeQuietly(directory) }
            var st = stat()
            guard fstatat(directory, baseName(of: path), &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0 { return nil }  // a whiteout
            return body(directory, st)
        }
        return nil
    }
}

/// A shared flock(2) on an image's record, held by whoever runs a container
/// of it: `urun rmi` and `prune` take the lock exclusively before removing.
public final class ImageLease: @unchecked Sendable {
    let fd: CInt

    init?(record path: String) {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        flock(fd, LOCK_SH)
        // The record's mtime is the image's last use (`urun images`).
        futimens(fd, nil)
    }

    deinit { closeQuietly(fd) }
}
