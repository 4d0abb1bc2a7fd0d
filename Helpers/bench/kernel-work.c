// kernel-work: the kernel work of `urun run IMAGE COMMAND`, in plain C, as a
// yardstick for the benchmark. Same namespaces, same id maps, same container
// directory (upper, work) on the same file system, the same scratch tmpfs,
// overlay (userxattr, volatile), /proc, /sys, /dev with its six device binds,
// devpts, shm, mqueue and symlinks, the three /etc binds, pivot_root, hostname,
// loopback, exec, then the same removal. What it leaves out is urun's own
// logic: the CLI, the image cache lookup, the in-root path walks, narration.
// With --isolation, also the isolation urun adds and bubblewrap's
// --unshare-all does not: the cgroup2 mount, docker's masked and read-only
// paths, the bounding and capability sets cut to docker's, no_new_privs and
// a seccomp filter (BPF, urun's compiled copy of docker's profile).
//
//   kernel-work [--isolation BPF] LOWERDIR CONTAINERS_DIR COMMAND [ARG...]
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <glob.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(call)                                                                                  \
    do {                                                                                             \
        if ((call) < 0) {                                                                            \
            fprintf(stderr, "kernel-work: %s: %s\n", #call, strerror(errno));                       \
            _exit(125);                                                                              \
        }                                                                                            \
    } while (0)

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd);
    CHECK(write(fd, text, strlen(text)));
    close(fd);
}

static void bind_file(const char *source, const char *target) {
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    CHECK(tree);
    CHECK((int)syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH));
    close(tree);
}

/// Docker's masked paths (as urun's SecurityPolicy): /dev/null over a file,
/// an empty read-only tmpfs over a directory; then its read-only paths.
static void mask_and_protect(void) {
    static const char *masked[] = {"proc/acpi", "proc/asound", "proc/interrupts", "proc/kcore", "proc/keys",
                                   "proc/latency_stats", "proc/sched_debug", "proc/scsi", "proc/timer_list",
                                   "proc/timer_stats", "sys/firmware", "sys/devices/virtual/powercap",
                                   "sys/devices/system/cpu/cpu*/thermal_throttle"};
    for (size_t i = 0; i < sizeof(masked) / sizeof(*masked); i++) {
        glob_t found;
        if (glob(masked[i], 0, NULL, &found) != 0)
            continue;
        for (size_t j = 0; j < found.gl_pathc; j++) {
            struct stat st;
            if (lstat(found.gl_pathv[j], &st) != 0)
                continue;
            if (S_ISDIR(st.st_mode))
                CHECK(mount("tmpfs", found.gl_pathv[j], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=0,mode=555"));
            else
                CHECK(mount("/dev/null", found.gl_pathv[j], NULL, MS_BIND, NULL));
        }
        globfree(&found);
    }
    static const char *read_only[] = {"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"};
    for (size_t i = 0; i < sizeof(read_only) / sizeof(*read_only); i++) {
        int tree = (int)syscall(SYS_open_tree, AT_FDCWD, read_only[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0)
            continue;
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
        CHECK((int)syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)));
        CHECK((int)syscall(SYS_move_mount, tree, "", AT_FDCWD, read_only[i], MOVE_MOUNT_F_EMPTY_PATH));
        close(tree);
    }
}

/// Docker's capabilities (bounding, effective, permitted), no_new_privs, and
/// the filter read before (urun reads its cached copy before the clone), the
/// last thing before exec, as urun does.
static struct sock_filter program[BPF_MAXINSNS];
static ssize_t program_length;

static void confine(void) {
    const uint64_t keep = 1ULL << CAP_CHOWN | 1ULL << CAP_DAC_OVERRIDE | 1ULL << CAP_FOWNER | 1ULL << CAP_FSETID |
                          1ULL << CAP_KILL | 1ULL << CAP_SETGID | 1ULL << CAP_SETUID | 1ULL << CAP_SETPCAP |
                          1ULL << CAP_NET_BIND_SERVICE | 1ULL << CAP_NET_RAW | 1ULL << CAP_SYS_CHROOT |
                          1ULL << CAP_MKNOD | 1ULL << CAP_AUDIT_WRITE | 1ULL << CAP_SETFCAP;
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
        if (!(keep & (1ULL << cap)))
            CHECK(prctl(PR_CAPBSET_DROP, cap, 0, 0, 0));
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {{.effective = (uint32_t)keep, .permitted = (uint32_t)keep},
                                             {.effective = (uint32_t)(keep >> 32), .permitted = (uint32_t)(keep >> 32)}};
    CHECK((int)syscall(SYS_capset, &header, data));
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    struct sock_fprog filter = {.len = (unsigned short)(program_length / sizeof(struct sock_filter)), .filter = program};
    CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter, 0, 0));
}

/// rm -rf, like urun's: directories without permissions (overlayfs' work/work is mode 0) are opened up first.
static void remove_tree(int parent, const char *name) {
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return;
    fchmodat(parent, name, 0700, 0);
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        DIR *dir = fdopendir(fd);
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL)
            if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, ".."))
                remove_tree(fd, entry->d_name);
        closedir(dir);
    }
    unlinkat(parent, name, AT_REMOVEDIR);
}

int main(int argc, char **argv) {
    const char *isolation = NULL;
    if (argc > 2 && strcmp(argv[1], "--isolation") == 0) {
        isolation = argv[2];
        argv += 2;
        argc -= 2;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: kernel-work [--isolation BPF] LOWERDIR CONTAINERS_DIR COMMAND [ARG...]\n");
        return 125;
    }
    if (isolation) {
        int fd = open(isolation, O_RDONLY | O_CLOEXEC);
        CHECK(fd);
        CHECK(program_length = read(fd, program, sizeof(program)));
        close(fd);
    }
    const char *lower = argv[1];
    unsigned char id[16];
    getrandom(id, sizeof(id), 0);
    char dir[4096], upper[4200], work[4200], rootfs[4200];
    int n = snprintf(dir, sizeof(dir), "%s/", argv[2]);
    for (int i = 0; i < 16; i++)
        n += snprintf(dir + n, sizeof(dir) - (size_t)n, "%02x", id[i]);
    snprintf(upper, sizeof(upper), "%s/upper", dir);
    snprintf(work, sizeof(work), "%s/work", dir);
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);

    int release[2], report[2];
    CHECK(pipe2(release, O_CLOEXEC));
    CHECK(pipe2(report, O_CLOEXEC));
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    sigprocmask(SIG_BLOCK, &blocked, NULL);

    struct clone_args args = {.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID, .exit_signal = SIGCHLD};
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    CHECK(pid);
    if (pid == 0) {
        close(release[1]);
        close(report[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        CHECK(unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET));
        char go;
        if (read(release[0], &go, 1) != 1)
            _exit(1);
        CHECK(unshare(CLONE_NEWCGROUP));
        CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
        int upper_fd = open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int work_fd = open(work, O_PATH | O_DIRECTORY | O_CLOEXEC);
        CHECK(mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755"));
        CHECK(mkdir(rootfs, 0755));
        char path[8192], data[8192];
        snprintf(path, sizeof(path), "%s/hostname", dir);
        write_file(path, "kernelwork\n");
        snprintf(path, sizeof(path), "%s/hosts", dir);
        write_file(path, "127.0.0.1\tlocalhost\n127.0.1.1\tkernelwork\n");
        snprintf(path, sizeof(path), "%s/resolv.conf", dir);
        write_file(path, "");
        snprintf(data, sizeof(data), "lowerdir=%s,upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d,userxattr,volatile",
                 lower, upper_fd, work_fd);
        CHECK(mount("overlay", rootfs, "overlay", 0, data));
        CHECK(chdir(rootfs));
        CHECK(mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
        CHECK(mount("sysfs", "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
        if (isolation)
            CHECK(mount("cgroup2", "sys/fs/cgroup", "cgroup2", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
        CHECK(mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"));
        const char *devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
        for (int i = 0; i < 6; i++) {
            char target[64], source[64];
            snprintf(target, sizeof(target), "dev/%s", devices[i]);
            snprintf(source, sizeof(source), "/dev/%s", devices[i]);
            close(open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
            CHECK(mount(source, target, NULL, MS_BIND, NULL));
        }
        CHECK(mkdir("dev/pts", 0755));
        CHECK(mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"));
        CHECK(mkdir("dev/shm", 0755));
        CHECK(mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"));
        CHECK(mkdir("dev/mqueue", 0755));
        CHECK(mount("mqueue", "dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
        CHECK(symlink("/proc/self/fd", "dev/fd"));
        CHECK(symlink("/proc/self/fd/0", "dev/stdin"));
        CHECK(symlink("/proc/self/fd/1", "dev/stdout"));
        CHECK(symlink("/proc/self/fd/2", "dev/stderr"));
        CHECK(symlink("pts/ptmx", "dev/ptmx"));
        const char *etc[] = {"hostname", "hosts", "resolv.conf"};
        for (int i = 0; i < 3; i++) {
            char target[64];
            snprintf(path, sizeof(path), "%s/%s", dir, etc[i]);
            snprintf(target, sizeof(target), "etc/%s", etc[i]);
            bind_file(path, target);
        }
        if (isolation)
            mask_and_protect();
        CHECK((int)syscall(SYS_pivot_root, ".", "."));
        CHECK(umount2(".", MNT_DETACH));
        CHECK(chdir("/"));
        CHECK(sethostname("kernelwork", 10));
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {0};
        strcpy(ifr.ifr_name, "lo");
        ioctl(sock, SIOCGIFFLAGS, &ifr);
        ifr.ifr_flags |= IFF_UP;
        CHECK(ioctl(sock, SIOCSIFFLAGS, &ifr));
        close(sock);
        sigprocmask(SIG_UNBLOCK, &blocked, NULL);
        if (isolation)
            confine();
        char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
                       "HOSTNAME=kernelwork", NULL};
        execve(argv[3], argv + 3, env);
        int error = errno;
        CHECK(write(report[1], &error, sizeof(error)));
        _exit(127);
    }

    close(release[0]);
    close(report[1]);
    char map[64], proc[64];
    snprintf(proc, sizeof(proc), "/proc/%d/setgroups", pid);
    write_file(proc, "deny");
    snprintf(proc, sizeof(proc), "/proc/%d/uid_map", pid);
    snprintf(map, sizeof(map), "0 %d 1", getuid());
    write_file(proc, map);
    snprintf(proc, sizeof(proc), "/proc/%d/gid_map", pid);
    snprintf(map, sizeof(map), "0 %d 1", getgid());
    write_file(proc, map);
    CHECK(mkdir(dir, 0700));
    CHECK(mkdir(upper, 0755));
    CHECK(mkdir(work, 0755));
    CHECK(write(release[1], "g", 1));
    close(release[1]);
    int error = 0;
    ssize_t got = read(report[0], &error, sizeof(error));
    int status = 0;
    waitpid(pid, &status, 0);
    remove_tree(AT_FDCWD, dir);
    if (got > 0) {
        fprintf(stderr, "kernel-work: exec %s: %s\n", argv[3], strerror(error));
        return 127;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
