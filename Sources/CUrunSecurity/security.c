#define _GNU_SOURCE
#include "urun_security.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>

int urun_cap_last(void) { return (int)cap_max_bits() - 1; }

int urun_cap_from_name(const char *name) {
    cap_value_t value;
    return cap_from_name(name, &value) == 0 ? (int)value : -1;
}

int urun_caps_bound(uint64_t keep) {
    int last = urun_cap_last();
    for (int cap = 0; cap <= last && cap < 64; cap++) {
        if (!(keep & (1ULL << cap)) && CAP_IS_SUPPORTED(cap) && cap_drop_bound(cap) != 0)
            return -1;
    }
    return 0;
}

int urun_caps_set(uint64_t keep) {
    int last = urun_cap_last();
    // The inheritable set stays empty (cap_init clears it): a non-root user
    // could otherwise gain capabilities from a file's inheritable bits, the
    // way docker fixed in CVE-2022-24769.
    cap_t caps = cap_init();
    if (!caps)
        return -1;
    for (int cap = 0; cap <= last && cap < 64; cap++) {
        if (keep & (1ULL << cap)) {
            cap_value_t value = cap;
            cap_set_flag(caps, CAP_EFFECTIVE, 1, &value, CAP_SET);
            cap_set_flag(caps, CAP_PERMITTED, 1, &value, CAP_SET);
        }
    }
    int rc = cap_set_proc(caps);
    int saved = errno;
    cap_free(caps);
    errno = saved;
    if (rc != 0)
        return -1;
    return cap_reset_ambient();
}

int urun_caps_set_sets(uint64_t effective, uint64_t permitted, uint64_t inheritable, uint64_t ambient) {
    int last = urun_cap_last();
    cap_t caps = cap_init();
    if (!caps)
        return -1;
    for (int cap = 0; cap <= last && cap < 64; cap++) {
        cap_value_t value = cap;
        if (effective & (1ULL << cap))
            cap_set_flag(caps, CAP_EFFECTIVE, 1, &value, CAP_SET);
        if (permitted & (1ULL << cap))
            cap_set_flag(caps, CAP_PERMITTED, 1, &value, CAP_SET);
        if (inheritable & (1ULL << cap))
            cap_set_flag(caps, CAP_INHERITABLE, 1, &value, CAP_SET);
    }
    int rc = cap_set_proc(caps);
    int saved = errno;
    cap_free(caps);
    errno = saved;
    if (rc != 0 || cap_reset_ambient() != 0)
        return -1;
    for (int cap = 0; cap <= last && cap < 64; cap++) {
        if ((ambient & (1ULL << cap)) && cap_set_ambient(cap, CAP_SET) != 0)
            return -1;
    }
    return 0;
}

int urun_set_keepcaps(int on) { return prctl(PR_SET_KEEPCAPS, on, 0, 0, 0); }

uint64_t urun_caps_effective(void) {
    cap_t caps = cap_get_proc();
    uint64_t mask = 0;
    if (!caps)
        return 0;
    for (int cap = 0; cap <= urun_cap_last() && cap < 64; cap++) {
        cap_flag_value_t value = CAP_CLEAR;
        if (cap_get_flag(caps, cap, CAP_EFFECTIVE, &value) == 0 && value == CAP_SET)
            mask |= 1ULL << cap;
    }
    cap_free(caps);
    return mask;
}

uint32_t urun_seccomp_action(int kind, uint32_t data) {
    switch (kind) {
    case URUN_SECCOMP_KILL_PROCESS: return SCMP_ACT_KILL_PROCESS;
    case URUN_SECCOMP_KILL_THREAD: return SCMP_ACT_KILL_THREAD;
    case URUN_SECCOMP_TRAP: return SCMP_ACT_TRAP;
    case URUN_SECCOMP_ERRNO: return SCMP_ACT_ERRNO(data);
    case URUN_SECCOMP_TRACE: return SCMP_ACT_TRACE(data);
    case URUN_SECCOMP_LOG: return SCMP_ACT_LOG;
    default: return SCMP_ACT_ALLOW;
    }
}

void *urun_seccomp_new(uint32_t default_action) {
    scmp_filter_ctx ctx = seccomp_init(default_action);
    // A binary tree of syscall numbers instead of a linear chain: each syscall
    // walks a few dozen instructions, not hundreds, and the kernel's action
    // cache, which runs the filter for every syscall number at load time, is
    // built several times faster. Older libseccomp lacks it: ignored there.
    if (ctx)
        (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    return ctx;
}

int urun_seccomp_add_arch(void *ctx, const char *name) {
    uint32_t arch = seccomp_arch_resolve_name(name);
    if (arch == 0)
        return -EINVAL;
    int rc = seccomp_arch_add(ctx, arch);
    return rc == -EEXIST ? 0 : rc;
}

const char *urun_seccomp_native_arch(void) {
    switch (seccomp_arch_native()) {
    case SCMP_ARCH_X86_64: return "x86_64";
    case SCMP_ARCH_AARCH64: return "aarch64";
    case SCMP_ARCH_X86: return "x86";
    case SCMP_ARCH_ARM: return "arm";
    default: return "other";
    }
}

int urun_seccomp_rule(void *ctx, uint32_t action, const char *syscall, unsigned int count, const urun_seccomp_arg *args) {
    int number = seccomp_syscall_resolve_name(syscall);
    if (number == __NR_SCMP_ERROR)
        return 1;
    struct scmp_arg_cmp compare[6];
    if (count > 6)
        return -EINVAL;
    for (unsigned int i = 0; i < count; i++) {
        compare[i].arg = args[i].index;
        compare[i].op = (enum scmp_compare)args[i].op;
        compare[i].datum_a = args[i].value;
        compare[i].datum_b = args[i].value_two;
    }
    int rc = seccomp_rule_add_array(ctx, action, number, count, compare);
    // A rule that only repeats the default action changes nothing.
    return rc == -EACCES ? 0 : rc;
}

int urun_seccomp_export(void *ctx, int fd) { return seccomp_export_bpf(ctx, fd); }

void urun_seccomp_free(void *ctx) { seccomp_release(ctx); }

int urun_seccomp_load(const void *program, size_t length) {
    struct sock_fprog fprog = {.len = (unsigned short)(length / sizeof(struct sock_filter)),
                               .filter = (struct sock_filter *)program};
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0);
}
