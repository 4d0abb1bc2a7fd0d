import CUrunSyscalls
import Glibc
import UrunKernel

/// Merges an image's layers into one tree, bottom up, applying their
/// whiteouts and opaque directories as deletions: for images with more
/// layers than one overlay mount can stack. Runs where the layers were
/// unpacked (inside the user namespace with subordinate ids), so owners stay.
struct Flattener {
    let store: ImageStore
    private let owners = getuid() == 0

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
                try merge(store.layersDirectory + "/" + layer, into: temporary, size: &size)
            }
            try store.install(temporary, as: digest, size: size)
        } catch {
            try? removeTree(temporary)
            throw error
        }
    }

    private func merge(_ source: String, into destination: String, size: inout UInt64) throws(UrunError) {
        for name in try directoryEntries(source) {
            let from = source + "/" + name
            let to = destination + "/" + name
            guard let st = fileStatus(from) else { continue }
            let existing = fileStatus(to)
            switch st.st_mode & S_IFMT {
            case S_IFCHR where st.st_rdev == 0:  // a whiteout: the name is gone from here on
                if existing != nil { try removeTree(to) }
            case S_IFDIR:
                if let existing, !isDirectory(existing) || isOpaque(from) { try removeTree(to) }
                if fileStatus(to) == nil { try sys(.unpackImage, path: to) { mkdir(to, 0o700) } }
                try merge(from, into: to, size: &size)
                try copyAttributes(st, to)
            default:
                if existing != nil { try removeTree(to) }
                try copyEntry(st, from, to, size: &size)
                try copyAttributes(st, to)
            }
        }
    }

    private func copyEntry(_ st: stat, _ from: String, _ to: String, size: inout UInt64) throws(UrunError) {
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            let input = try sys(.unpackImage, path: from) { open(from, O_RDONLY | O_CLOEXEC) }
            defer { closeQuietly(input) }
            let output = try sys(.unpackImage, path: to) { open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
            defer { closeQuietly(output) }
            var left = Int(st.st_size)
            while left > 0 {
                let n = urun_copy_file_range(input, output, left)
                guard n > 0 else { throw .kernel(.unpackImage, path: to, n == 0 ? .ioError : .current) }
                left -= n
            }
            size += UInt64(st.st_size)
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(from, &buffer, buffer.count - 1)
            guard n >= 0 else { throw .kernel(.unpackImage, path: from, .current) }
            buffer[n] = 0
            try sys(.unpackImage, path: to) { symlink(buffer, to) }
        case S_IFIFO:
            try sys(.unpackImage, path: to) { mkfifo(to, st.st_mode & 0o7777) }
        default:
            return  // device nodes: never in an unprivileged user's layers
        }
    }

    private func copyAttributes(_ st: stat, _ path: String) throws(UrunError) {
        if owners { fchownat(AT_FDCWD, path, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) }
        guard st.st_mode & S_IFMT != S_IFLNK else { return }
        try sys(.unpackImage, path: path) { chmod(path, st.st_mode & 0o7777) }
        var times = [st.st_atim, st.st_mtim]
        utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
    }

    private func isOpaque(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { closeQuietly(fd) }
        var value: UInt8 = 0
        return urun_fgetxattr(fd, "user.overlay.opaque", &value, 1) == 1 && value == UInt8(ascii: "y")
    }
}
