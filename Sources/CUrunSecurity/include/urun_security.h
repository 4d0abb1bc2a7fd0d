// Capabilities through libcap and seccomp filters through libseccomp (both
// linked statically), behind a few calls that take plain numbers: the
// decisions (which capabilities, which rules) are all made in Swift.
#ifndef URUN_SECURITY_H
#define URUN_SECURITY_H
#include <stddef.h>
#include <stdint.h>

/// The highest capability number this kernel knows.
int urun_cap_last(void);
/// A capability number from a name such as "cap_chown" or "chown"; -1 if unknown.
int urun_cap_from_name(const char *name);
/// Drops every capability not in `keep` (a bit per number) from the bounding set.
int urun_caps_bound(uint64_t keep);
/// Sets the effective and permitted sets to `keep`, and clears the
/// inheritable and ambient sets.
int urun_caps_set(uint64_t keep);
/// Sets the effective, permitted and inheritable sets as given (an OCI
/// config's sets), then raises each capability of `ambient` (which must be in
/// permitted and inheritable, the kernel's rule).
int urun_caps_set_sets(uint64_t effective, uint64_t permitted, uint64_t inheritable, uint64_t ambient);
/// PR_SET_KEEPCAPS: keep the permitted set across a switch away from uid 0.
int urun_set_keepcaps(int on);
/// The effective set of this process, as a bit mask.
uint64_t urun_caps_effective(void);

/// seccomp actions, in libseccomp's encoding.
enum {
    URUN_SECCOMP_KILL_PROCESS = 1, URUN_SECCOMP_KILL_THREAD, URUN_SECCOMP_TRAP, URUN_SECCOMP_ERRNO,
    URUN_SECCOMP_TRACE, URUN_SECCOMP_ALLOW, URUN_SECCOMP_LOG
};
uint32_t urun_seccomp_action(int kind, uint32_t data);

typedef struct {
    unsigned int index;
    int op; // libseccomp's SCMP_CMP_* values (1 NE .. 7 MASKED_EQ)
    uint64_t value;
    uint64_t value_two;
} urun_seccomp_arg;

/// A new filter context with `default_action`; NULL on failure.
void *urun_seccomp_new(uint32_t default_action);
/// Adds an architecture by libseccomp's name ("x86", "x32", "arm", ...); 0, or a negative errno.
int urun_seccomp_add_arch(void *ctx, const char *name);
/// The native architecture's name ("x86_64", "aarch64", ...).
const char *urun_seccomp_native_arch(void);
/// Adds a rule; 1 when the syscall is unknown to libseccomp (skipped, as docker
/// skips it), 0 on success, a negative errno otherwise.
int urun_seccomp_rule(void *ctx, uint32_t action, const char *syscall, unsigned int count, const urun_seccomp_arg *args);
/// Writes the filter's BPF program to fd.
int urun_seccomp_export(void *ctx, int fd);
void urun_seccomp_free(void *ctx);
/// Installs a BPF program (as exported) on this process.
int urun_seccomp_load(const void *program, size_t length);
#endif
