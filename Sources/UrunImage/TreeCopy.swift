import CUrunArchive
import CUrunSyscalls
import Glibc
import UrunKernel

/// Trees copied in and out of containers (`urun cp`, `urun export`) as tar
/// streams: written with LayerWriter, read back with the Extractor, which
/// treats every archive as hostile (nothing lands outside its destination).
public enum TreeCopy {
    /// The entry `name` of `parent` (a file, a symlink as itself, or a whole
    /// directory) as a tar whose top entry is `prefix`.
    public static func write(
        _ name: [UInt8], in parent: CInt, as prefix: [UInt8], display: String, to output: CInt,
        owner: @escaping (uid_t, gid_t) -> (uid_t, gid_t)
    ) throws(UrunError) {
        let writer = LayerWriter(form: .tree, gzip: false, prefix: prefix, owner: owner)
        _ = try writer.write(entry: DirectoryEntry(bytes: name, type: UInt8(DT_UNKNOWN)), in: parent, display: display, to: output)
    }

    /// Extracts the tar in the open file `tar` (from its start) below the
    /// directory `root`, restoring owners when asked.
    public static func extract(_ tar: CInt, into root: CInt, display: String, owners: Bool) throws(UrunError) {
        let copy = urun_dup_cloexec(tar)
        guard copy >= 0, lseek(copy, 0, SEEK_SET) == 0 else { throw .kernel(.readFile, path: display, .current) }
        let reader = try TarReader(FileSource(descriptor: copy, path: display), name: display)
        var extractor = Extractor(
            root: root, rootPath: display, options: Extractor.Options(owners: owners, devices: false, whiteouts: false))
        try extractor.extract(from: reader, first: nil)
    }
}
