import CUrunSyscalls
import Glibc
import UrunKernel

/// Becomes `uid`:`gid` with `groups` as supplementary groups (nil: the ones
/// it has stay): group ids first, since changing the uid away from 0 gives
/// up the right to change them. As root of the namespace, setgid(2) and
/// setuid(2) set the real, effective and saved ids alike.
public func switchUser(uid: UInt32, gid: UInt32, groups: [UInt32]?) throws(UrunError) {
    let shown = "setgroups(\(groups.map { "\($0)" } ?? "unchanged")), setgid(\(gid)), setuid(\(uid))"
    let deathSignal = urun_get_pdeathsig()
    // A user namespace with one mapped id denies setgroups(2) (user_namespaces(7)):
    // the groups stay as they are, as runc and crun leave them there.
    if let groups, (try? readText("/proc/self/setgroups"))?.hasPrefix("deny") != true {
        try sys(.dropPrivileges, explain: shown) { groups.withUnsafeBufferPointer { setgroups($0.count, $0.baseAddress) } }
    }
    try sys(.dropPrivileges) { setgid(gid) }
    try sys(.dropPrivileges) { setuid(uid) }
    // A change of credentials clears PR_SET_PDEATHSIG (prctl(2)): set it
    // again, so a container still dies with its supervisor (and one an OCI
    // engine owns, without any, still outlives `create` and `exec --detach`).
    if deathSignal != 0 { _ = urun_set_pdeathsig(deathSignal) }
}
