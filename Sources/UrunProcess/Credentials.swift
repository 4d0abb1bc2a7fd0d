import CUrunSyscalls
import Glibc
import UrunKernel

/// Becomes `uid`:`gid` with `groups` as supplementary groups: group ids
/// first, since changing the uid away from 0 gives up the right to change
/// them. As root of the namespace, setgid(2) and setuid(2) set the real,
/// effective and saved ids alike.
public func switchUser(uid: UInt32, gid: UInt32, groups: [UInt32]) throws(UrunError) {
    let shown = "setgroups(\(groups)), setgid(\(gid)), setuid(\(uid))"
    try sys(.dropPrivileges, explain: shown) { groups.withUnsafeBufferPointer { setgroups($0.count, $0.baseAddress) } }
    try sys(.dropPrivileges) { setgid(gid) }
    try sys(.dropPrivileges) { setuid(uid) }
    // A change of credentials clears PR_SET_PDEATHSIG (prctl(2)): set it
    // again, so the container still dies with its supervisor.
    _ = urun_set_pdeathsig(SIGKILL)
}
