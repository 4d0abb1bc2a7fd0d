import CUrunSyscalls
import Glibc
import UrunKernel

/// Makes `newRoot` the root of this mount namespace and detaches the old one.
///
/// pivot_root(".", ".") stacks the old root on top of the new one at "/";
/// unmounting "." (lazily) then removes it, so no directory for the old root
/// has to exist in the image. Unlike chroot(2), nothing of the host's file
/// system stays reachable from the container afterwards.
public func pivotRoot(to newRoot: String) throws(UrunError) {
    try sys(.pivotRoot, path: newRoot) { chdir(newRoot) }
    try sys(.pivotRoot, explain: "pivot_root(\"\(newRoot)\", \"\(newRoot)\")", path: newRoot) {
        urun_pivot_root(".", ".")
    }
    try sys(.detachOldRoot, explain: "umount2(\".\", MNT_DETACH)", path: "/") { umount2(".", CInt(MNT_DETACH)) }
    try sys(.pivotRoot, path: "/") { chdir("/") }
}
