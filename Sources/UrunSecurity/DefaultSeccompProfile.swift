/// urun's default seccomp profile: docker's default made stricter where the
/// issue asks. Everything not listed fails with EPERM. Not listed at all:
/// keyctl, add_key, request_key (the kernel keyring is not namespaced),
/// io_uring_* (a large attack surface that bypasses seccomp's view of I/O),
/// userfaultfd, kexec_*, swapon, swapoff, pivot_root, uselib, nfsservctl.
extension SeccompProfile {
    /// Bump when the rules change: compiled programs are cached under it.
    public static let defaultIdentity = "urun-default-2"

    public static let `default` = SeccompProfile(
        defaultAction: .errno(1),
        architectures: ["x86_64": ["x86", "x32"], "aarch64": ["arm"]],
        rules: [
            Rule(alwaysAllowed),
            // socket(2) except AF_ALG (38) and AF_VSOCK (40): one rule per range,
            // as libseccomp compares an argument once per rule.
            Rule(["socket"], args: [Argument(0, .lessOrEqual, 37)]),
            Rule(["socket"], args: [Argument(0, .equal, 39)]),
            Rule(["socket"], args: [Argument(0, .greaterOrEqual, 41)]),
            // personality(2): Linux, PER_LINUX32, UNAME26 and their mix, and the query.
            Rule(["personality"], args: [Argument(0, .equal, 0)]),
            Rule(["personality"], args: [Argument(0, .equal, 0x0008)]),
            Rule(["personality"], args: [Argument(0, .equal, 0x20000)]),
            Rule(["personality"], args: [Argument(0, .equal, 0x20008)]),
            Rule(["personality"], args: [Argument(0, .equal, 0xffff_ffff)]),
            Rule(["arch_prctl"], includes: Condition(arches: ["amd64", "x32"])),
            Rule(["modify_ldt"], includes: Condition(arches: ["amd64", "x32", "x86"])),
            Rule(
                ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
                includes: Condition(arches: ["arm", "arm64"])),
            // What needs a capability follows the container's capability set.
            Rule(["open_by_handle_at"], includes: Condition(caps: ["DAC_READ_SEARCH"])),
            Rule(
                [
                    "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
                    "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
                    "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
                ], includes: Condition(caps: ["SYS_ADMIN"])),
            // clone(2) without namespace flags (CLONE_NEWNS|CGROUP|UTS|IPC|USER|PID|NET = 0x7e020000).
            Rule(["clone"], args: [Argument(0, .maskedEqual, 0x7e02_0000, 0)], excludes: Condition(caps: ["SYS_ADMIN"])),
            // clone3 passes its flags in memory seccomp cannot read: ENOSYS makes libc fall back to clone.
            Rule(["clone3"], .errno(38), excludes: Condition(caps: ["SYS_ADMIN"])),
            Rule(["reboot"], includes: Condition(caps: ["SYS_BOOT"])),
            Rule(["chroot"], includes: Condition(caps: ["SYS_CHROOT"])),
            Rule(["delete_module", "init_module", "finit_module"], includes: Condition(caps: ["SYS_MODULE"])),
            Rule(["acct"], includes: Condition(caps: ["SYS_PACCT"])),
            Rule(
                ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
                includes: Condition(caps: ["SYS_PTRACE"])),
            Rule(["iopl", "ioperm"], includes: Condition(caps: ["SYS_RAWIO"])),
            Rule(["settimeofday", "stime", "clock_settime", "clock_settime64"], includes: Condition(caps: ["SYS_TIME"])),
            Rule(["vhangup"], includes: Condition(caps: ["SYS_TTY_CONFIG"])),
            Rule(["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"], includes: Condition(caps: ["SYS_NICE"])),
            Rule(["syslog"], includes: Condition(caps: ["SYSLOG"])),
            Rule(["bpf"], includes: Condition(caps: ["BPF"])),
            Rule(["perf_event_open"], includes: Condition(caps: ["PERFMON"])),
        ])

    /// Syscalls every container may make: files, memory, processes without
    /// new namespaces, signals, sockets' other calls, time, IPC.
    static let alwaysAllowed = [
        "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod", "chown",
        "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
        "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
        "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
        "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
        "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir",
        "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr",
        "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
        "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu",
        "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
        "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
        "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
        "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
        "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
        "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
        "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
        "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr",
        "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore",
        "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
        "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
        "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
        "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
        "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
        "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
        "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
        "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename",
        "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
        "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
        "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
        "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
        "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
        "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
        "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32",
        "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
        "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget",
        "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair",
        "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
        "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
        "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
        "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
        "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork",
        "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
    ]
}
