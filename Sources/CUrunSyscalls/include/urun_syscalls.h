// Thin wrappers for what Swift cannot call directly: syscalls without a glibc
// wrapper (clone3, pivot_root, openat2, mount_setattr, ...), variadic calls
// (ioctl, prctl, fcntl) and macros (W* status decoding, CMSG_*).
// No logic lives here: each function is one call, so every decision stays in Swift.
#ifndef URUN_SYSCALLS_H
#define URUN_SYSCALLS_H

#include <stdint.h>
#include <sys/types.h>
#include <signal.h>

// Constants that glibc hides behind _GNU_SOURCE (which the Swift Glibc module
// is built without). syscalls.c checks each against the real headers.
enum {
    URUN_O_PATH = 010000000,
    URUN_AT_EMPTY_PATH = 0x1000,
    URUN_AT_RECURSIVE = 0x8000,
    URUN_CLONE_NEWNS = 0x00020000,
    URUN_CLONE_NEWCGROUP = 0x02000000,
    URUN_CLONE_NEWTIME = 0x00000080,
    URUN_CLONE_NEWUTS = 0x04000000,
    URUN_CLONE_NEWIPC = 0x08000000,
    URUN_CLONE_NEWUSER = 0x10000000,
    URUN_CLONE_NEWPID = 0x20000000,
    URUN_CLONE_NEWNET = 0x40000000,
    URUN_CLONE_PARENT = 0x00008000,
    URUN_OPEN_TREE_CLONE = 1,
    URUN_MOVE_MOUNT_F_EMPTY_PATH = 0x4,
    URUN_MOVE_MOUNT_T_EMPTY_PATH = 0x40,
    URUN_MOUNT_ATTR_RDONLY = 0x1,
    URUN_MOUNT_ATTR_NOSUID = 0x2,
    URUN_MOUNT_ATTR_NODEV = 0x4,
    URUN_MOUNT_ATTR_NOEXEC = 0x8,
    URUN_CLOSE_RANGE_CLOEXEC = 4,
    URUN_RESOLVE_NO_MAGICLINKS = 0x02,
    URUN_RESOLVE_NO_SYMLINKS = 0x04,
    URUN_RESOLVE_BENEATH = 0x08,
    URUN_RESOLVE_IN_ROOT = 0x10,
};

int urun_pipe2(int fds[2], int flags);
dev_t urun_makedev(unsigned int major, unsigned int minor);
int urun_unshare(int flags);
/// setns(2): with a pidfd, several namespaces at once (Linux 5.8).
int urun_setns(int fd, int flags);
int urun_sethostname(const char *name, size_t length);
int urun_setdomainname(const char *name, size_t length);
/// Writes `text` to an existing file in one write(2) (a /proc file); 0 or -1.
int urun_write_file(const char *path, const char *text);

// --- process creation -------------------------------------------------------

/// clone3(2) with CLONE_PIDFD (and CLONE_INTO_CGROUP when cgroup_fd >= 0),
/// falling back to clone(2) + pidfd_open(2) on kernels without clone3.
/// Returns the child's pid in the parent, 0 in the child, -1 with errno set.
/// No CLONE_VM: the child runs on a copy of the parent's memory, like fork(2).
pid_t urun_clone(uint64_t flags, int cgroup_fd, int *pidfd_out);

int urun_pidfd_open(pid_t pid);
int urun_pidfd_send_signal(int pidfd, int sig);

// --- mounts -----------------------------------------------------------------

int urun_pivot_root(const char *new_root, const char *put_old);
/// mount_setattr(2) on path relative to dirfd; flags are AT_* flags.
int urun_mount_setattr(int dirfd, const char *path, unsigned int flags,
                       uint64_t attr_set, uint64_t attr_clr);
int urun_open_tree(int dirfd, const char *path, unsigned int flags);
int urun_move_mount(int from_dirfd, const char *from_path, int to_dirfd,
                    const char *to_path, unsigned int flags);

// --- files ------------------------------------------------------------------

/// openat2(2): open `path` below `dirfd` with RESOLVE_* rules.
int urun_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                 uint64_t resolve);
int urun_close_range(unsigned int first, unsigned int last, unsigned int flags);
int urun_open_mode(const char *path, int flags, mode_t mode);
int urun_openat_mode(int dirfd, const char *path, int flags, mode_t mode);
int urun_set_cloexec(int fd, int on);
int urun_set_nonblock(int fd, int on);
/// getrandom(2), filling the whole buffer.
int urun_random_bytes(void *buffer, size_t length);
/// statfs(2)'s f_type of the file system `path` is on; -1 with errno set.
long urun_fs_type(const char *path);
/// memfd_create(2) with MFD_CLOEXEC.
int urun_memfd(const char *name);
/// fsetxattr(2), fgetxattr(2) (overlayfs' user.overlay.* attributes).
int urun_fsetxattr(int fd, const char *name, const void *value, size_t size);
long urun_fgetxattr(int fd, const char *name, void *value, size_t size);
/// copy_file_range(2) from the current offsets: the kernel copies (or shares) the data.
long urun_copy_file_range(int in, int out, size_t length);
/// A CLOEXEC duplicate of fd, numbered 3 or above.
int urun_dup_cloexec(int fd);

// --- prctl ------------------------------------------------------------------

/// fork + execve of a helper that dies with urun (PR_SET_PDEATHSIG, SIGKILL):
/// `fds[i]` becomes its descriptor i, every other one is closed, signals are
/// unblocked and default. Returns the pid (-1 and errno on failure).
pid_t urun_spawn_tied(const char *path, char *const argv[], char *const envp[], const int *fds, int count);
int urun_set_pdeathsig(int sig);
/* personality(2): the execution domain (PER_LINUX 0, PER_LINUX32 8). */
int urun_personality(unsigned long persona);
/* The signal PR_SET_PDEATHSIG set, 0 for none. */
int urun_get_pdeathsig(void);
int urun_set_dumpable(int on);
int urun_set_no_new_privs(void);
int urun_set_child_subreaper(void);

// --- terminals and networking (ioctl) ---------------------------------------

int urun_set_controlling_tty(int fd);
int urun_get_winsize(int fd, unsigned short *rows, unsigned short *cols);
/// Bytes waiting to be read on a terminal or pipe (FIONREAD); -1 on error.
int urun_pending_input(int fd);
int urun_set_winsize(int fd, unsigned short rows, unsigned short cols);
int urun_unlock_pt(int master_fd);
int urun_pt_number(int master_fd, unsigned int *number);
/// Bring the loopback interface of the current network namespace up.
int urun_loopback_up(void);

// --- descriptor passing over a unix socket (SCM_RIGHTS) ---------------------

int urun_send_fd(int socket_fd, int fd);
/// Returns the received descriptor (CLOEXEC), or -1 with errno (0 at EOF).
int urun_recv_fd(int socket_fd);

// --- signalfd ------------------------------------------------------------

/// signalfd(2) for `set` (CLOEXEC|NONBLOCK).
int urun_signalfd(const sigset_t *set);
/// Reads one signal from a signalfd: returns 1 and fills the fields, 0 when
/// none is pending, -1 on error.
int urun_read_signal(int fd, int *signo, int *code, int *sender_pid);

// --- unix stream sockets, named below a directory descriptor ---------------
// (through /proc/self/fd/N/NAME, so the path never exceeds sun_path's 108 bytes)

/// A listening socket NAME in the directory dirfd (CLOEXEC|NONBLOCK).
int urun_unix_listen(int dirfd, const char *name);
/// A connected socket to NAME in the directory dirfd (CLOEXEC).
int urun_unix_connect(int dirfd, const char *name);
/// accept4 with CLOEXEC|NONBLOCK.
int urun_accept(int listener);

// --- wait status decoding (macros in C) -------------------------------------

int urun_wifexited(int status);
int urun_wexitstatus(int status);
int urun_wifsignaled(int status);
int urun_wtermsig(int status);

// --- memory -----------------------------------------------------------------

/// Unmaps this process's pages of its own executable file (they stay in the
/// page cache): a long-lived process drops what start-up touched and refaults
/// only what it still uses.
void urun_drop_executable_pages(void);

// --- interruption during long operations (unpacking) ------------------------

/// Installs SIGINT/SIGTERM/SIGHUP handlers that only set a flag, so a long
/// unpack can stop cleanly and remove its temporary directory.
void urun_install_interrupt_flag(void);
/// The signal that interrupted, or 0.
int urun_interrupted(void);
/// Restores default dispositions for the signals above.
void urun_remove_interrupt_flag(void);

#endif
