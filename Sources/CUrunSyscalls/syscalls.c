#define _GNU_SOURCE
#include "urun_syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <sched.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/personality.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

_Static_assert(URUN_O_PATH == O_PATH, "O_PATH");
_Static_assert(URUN_AT_EMPTY_PATH == AT_EMPTY_PATH, "AT_EMPTY_PATH");
_Static_assert(URUN_AT_RECURSIVE == AT_RECURSIVE, "AT_RECURSIVE");
_Static_assert(URUN_CLONE_NEWNS == CLONE_NEWNS, "CLONE_NEWNS");
_Static_assert(URUN_CLONE_NEWCGROUP == CLONE_NEWCGROUP, "CLONE_NEWCGROUP");
#ifdef CLONE_NEWTIME
_Static_assert(URUN_CLONE_NEWTIME == CLONE_NEWTIME, "CLONE_NEWTIME");
#endif
_Static_assert(URUN_CLONE_NEWUTS == CLONE_NEWUTS, "CLONE_NEWUTS");
_Static_assert(URUN_CLONE_NEWIPC == CLONE_NEWIPC, "CLONE_NEWIPC");
_Static_assert(URUN_CLONE_NEWUSER == CLONE_NEWUSER, "CLONE_NEWUSER");
_Static_assert(URUN_CLONE_NEWPID == CLONE_NEWPID, "CLONE_NEWPID");
_Static_assert(URUN_CLONE_NEWNET == CLONE_NEWNET, "CLONE_NEWNET");
_Static_assert(URUN_CLONE_PARENT == CLONE_PARENT, "CLONE_PARENT");
_Static_assert(URUN_OPEN_TREE_CLONE == OPEN_TREE_CLONE, "OPEN_TREE_CLONE");
_Static_assert(URUN_MOVE_MOUNT_F_EMPTY_PATH == MOVE_MOUNT_F_EMPTY_PATH, "MOVE_MOUNT_F_EMPTY_PATH");
_Static_assert(URUN_MOVE_MOUNT_T_EMPTY_PATH == MOVE_MOUNT_T_EMPTY_PATH, "MOVE_MOUNT_T_EMPTY_PATH");
_Static_assert(URUN_MOUNT_ATTR_RDONLY == MOUNT_ATTR_RDONLY, "MOUNT_ATTR_RDONLY");
_Static_assert(URUN_CLOSE_RANGE_CLOEXEC == (1U << 2), "CLOSE_RANGE_CLOEXEC");
_Static_assert(URUN_RESOLVE_NO_MAGICLINKS == RESOLVE_NO_MAGICLINKS, "RESOLVE_NO_MAGICLINKS");
_Static_assert(URUN_RESOLVE_NO_SYMLINKS == RESOLVE_NO_SYMLINKS, "RESOLVE_NO_SYMLINKS");
_Static_assert(URUN_RESOLVE_BENEATH == RESOLVE_BENEATH, "RESOLVE_BENEATH");
_Static_assert(URUN_RESOLVE_IN_ROOT == RESOLVE_IN_ROOT, "RESOLVE_IN_ROOT");

int urun_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
dev_t urun_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
int urun_unshare(int flags) { return unshare(flags); }
int urun_setns(int fd, int flags) { return setns(fd, flags); }
int urun_setdomainname(const char *name, size_t length) { return setdomainname(name, length); }

int urun_write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t length = strlen(text);
    ssize_t n = write(fd, text, length);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)length ? 0 : -1;
}

int urun_sethostname(const char *name, size_t length) { return sethostname(name, length); }

pid_t urun_clone(uint64_t flags, int cgroup_fd, int *pidfd_out) {
    int pidfd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = flags | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    // With CLONE_PARENT the kernel takes the caller's own exit signal, and
    // clone3 insists that none be given.
    args.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0 && (errno == ENOSYS || errno == E2BIG) && cgroup_fd < 0) {
        // Kernels before 5.3: plain clone(2); no stack argument means the
        // child continues on a copy of this stack, exactly like fork(2).
        pid = syscall(SYS_clone, (unsigned long)(flags | SIGCHLD), 0, 0, 0, 0);
        if (pid > 0)
            pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    }
    if (pid > 0 && pidfd_out)
        *pidfd_out = pidfd;
    return (pid_t)pid;
}

int urun_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int urun_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int urun_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int urun_mount_setattr(int dirfd, const char *path, unsigned int flags,
                       uint64_t attr_set, uint64_t attr_clr) {
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = attr_set;
    attr.attr_clr = attr_clr;
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof(attr));
}

int urun_open_tree(int dirfd, const char *path, unsigned int flags) {
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

int urun_move_mount(int from_dirfd, const char *from_path, int to_dirfd,
                    const char *to_path, unsigned int flags) {
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}

int urun_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                 uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int urun_close_range(unsigned int first, unsigned int last, unsigned int flags) {
    return (int)syscall(SYS_close_range, first, last, flags);
}

int urun_open_mode(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }

int urun_openat_mode(int dirfd, const char *path, int flags, mode_t mode) {
    return openat(dirfd, path, flags, mode);
}

int urun_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC));
}

int urun_set_nonblock(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}

int urun_random_bytes(void *buffer, size_t length) {
    size_t filled = 0;
    while (filled < length) {
        ssize_t n = getrandom((char *)buffer + filled, length - filled, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        filled += (size_t)n;
    }
    return 0;
}

long urun_fs_type(const char *path) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    return (long)info.f_type;
}

int urun_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
int urun_fsetxattr(int fd, const char *name, const void *value, size_t size) {
    return fsetxattr(fd, name, value, size, 0);
}
long urun_fgetxattr(int fd, const char *name, void *value, size_t size) { return fgetxattr(fd, name, value, size); }
/* copy_file_range(2), or read and write where the kernel cannot copy between
   these two files (EXDEV: an overlay and ext4; EINVAL, ENOSYS, EOPNOTSUPP):
   at most `length` bytes from the current offsets, how many were copied. */
long urun_copy_file_range(int in, int out, size_t length) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, length, 0);
    if (n >= 0 || (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)) return n;
    char buffer[65536];
    do n = read(in, buffer, length < sizeof buffer ? length : sizeof buffer); while (n < 0 && errno == EINTR);
    if (n <= 0) return n;
    for (ssize_t written = 0; written < n;) {
        ssize_t w = write(out, buffer + written, (size_t)(n - written));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        written += w;
    }
    return n;
}

int urun_dup_cloexec(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 3); }

int urun_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }
int urun_personality(unsigned long persona) { return personality(persona); }
int urun_get_pdeathsig(void) {
    int sig = 0;
    return prctl(PR_GET_PDEATHSIG, (unsigned long)&sig, 0, 0, 0) == 0 ? sig : 0;
}
int urun_set_dumpable(int on) { return prctl(PR_SET_DUMPABLE, (unsigned long)on, 0, 0, 0); }
int urun_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
int urun_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

int urun_set_controlling_tty(int fd) { return ioctl(fd, TIOCSCTTY, 0); }

int urun_pending_input(int fd) {
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

int urun_get_winsize(int fd, unsigned short *rows, unsigned short *cols) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
        return -1;
    *rows = ws.ws_row;
    *cols = ws.ws_col;
    return 0;
}

int urun_set_winsize(int fd, unsigned short rows, unsigned short cols) {
    struct winsize ws;
    memset(&ws, 0, sizeof(ws));
    ws.ws_row = rows;
    ws.ws_col = cols;
    return ioctl(fd, TIOCSWINSZ, &ws);
}

int urun_unlock_pt(int master_fd) {
    int unlock = 0;
    return ioctl(master_fd, TIOCSPTLCK, &unlock);
}

int urun_pt_number(int master_fd, unsigned int *number) {
    return ioctl(master_fd, TIOCGPTN, number);
}

int urun_loopback_up(void) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = ioctl(sock, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(sock, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(sock);
    errno = saved;
    return rc;
}

int urun_send_fd(int socket_fd, int fd) {
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    ssize_t n;
    do {
        n = sendmsg(socket_fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

int urun_recv_fd(int socket_fd) {
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};
    ssize_t n;
    do {
        n = recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n == 0)
            errno = 0;
        return -1;
    }
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS) {
        errno = EBADMSG;
        return -1;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
    return fd;
}

int urun_signalfd(const sigset_t *set) { return signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK); }

int urun_read_signal(int fd, int *signo, int *code, int *sender_pid) {
    struct signalfd_siginfo info;
    ssize_t n;
    do {
        n = read(fd, &info, sizeof(info));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? 0 : -1;
    if (n != sizeof(info)) {
        errno = EIO;
        return -1;
    }
    *signo = (int)info.ssi_signo;
    *code = info.ssi_code;
    *sender_pid = (int)info.ssi_pid;
    return 1;
}

static int unix_address(struct sockaddr_un *address, int dirfd, const char *name) {
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    int n = snprintf(address->sun_path, sizeof(address->sun_path), "/proc/self/fd/%d/%s", dirfd, name);
    if (n < 0 || (size_t)n >= sizeof(address->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int urun_unix_listen(int dirfd, const char *name) {
    struct sockaddr_un address;
    if (unix_address(&address, dirfd, name) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(fd, 8) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int urun_unix_connect(int dirfd, const char *name) {
    struct sockaddr_un address;
    if (unix_address(&address, dirfd, name) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int urun_accept(int listener) { return accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }

int urun_wifexited(int status) { return WIFEXITED(status); }
int urun_wexitstatus(int status) { return WEXITSTATUS(status); }
int urun_wifsignaled(int status) { return WIFSIGNALED(status); }
int urun_wtermsig(int status) { return WTERMSIG(status); }

extern char __executable_start[];
extern char etext[];

void urun_drop_executable_pages(void) {
    // Only the read-only text: writable data may hold state.
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)__executable_start + page - 1) & ~(page - 1);
    uintptr_t end = (uintptr_t)etext & ~(page - 1);
    if (end > start)
        madvise((void *)start, end - start, MADV_DONTNEED);
}

static volatile sig_atomic_t interrupted_by = 0;

static void note_interrupt(int sig) { interrupted_by = sig; }

void urun_install_interrupt_flag(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = note_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    // A caller may have started us with these blocked (some CI runners do).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int urun_interrupted(void) { return interrupted_by; }

void urun_remove_interrupt_flag(void) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
}

pid_t urun_spawn_tied(const char *path, char *const argv[], char *const envp[], const int *fds, int count) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    // The child: C only from here to execve. It dies with its parent, even
    // one that is SIGKILLed, so no helper outlives the container it serves.
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int signo = 1; signo < NSIG; signo++) signal(signo, SIG_DFL);
    int moved[16];
    if (count > 16) _exit(127);
    for (int i = 0; i < count; i++) moved[i] = fcntl(fds[i], F_DUPFD, 64);
    for (int i = 0; i < count; i++) dup2(moved[i], i);
    syscall(SYS_close_range, (unsigned int)count, ~0U, 0);
    execve(path, argv, envp);
    _exit(127);
}
