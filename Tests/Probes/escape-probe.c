// escape-probe: run inside a container, it tries what a container must not
// be able to do and prints one `check=result` line per attempt. A result is
// "ok" (it worked), an errno name (it failed), or for reads of masked files
// "masked" (/dev/null is bound over it) or the number of bytes read.
// The integration tests (SecurityTests) assert each line; built static.
//
//   escape-probe                 every check
//   escape-probe CHECK...        just these
//   escape-probe watch SECONDS DEV:INO
//        for SECONDS, open /proc/PID/exe of every other process and report
//        any whose file is DEV:INO (urun's binary on the host)
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

static const char *result(long rc) {
    static char buffer[32];
    if (rc >= 0)
        return "ok";
    const char *name = strerrorname_np(errno);
    if (name)
        return name;
    snprintf(buffer, sizeof buffer, "errno%d", errno);
    return buffer;
}

// Runs `attempt` in a child so that whatever it changes (namespaces, mounts)
// does not touch the probe; the child's exit code carries the errno.
static const char *in_child(int (*attempt)(void)) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(attempt() < 0 ? errno : 0);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status))
        return "crashed";
    errno = WEXITSTATUS(status);
    return result(errno ? -1 : 0);
}

static int do_mount(void) { return mount("probe", "/tmp", "tmpfs", 0, "size=1m"); }
static int do_unshare_user(void) { return unshare(CLONE_NEWUSER); }
static int do_unshare_mount(void) { return unshare(CLONE_NEWNS); }
static int do_sethostname(void) { return sethostname("escaped", 7); }
static int do_clone_newns(void) {
    long pid = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return pid < 0 ? -1 : 0;
}
static int do_clone3(void) {
    // Invalid on purpose: a kernel that sees it says EINVAL; the filter says ENOSYS.
    return (int)syscall(SYS_clone3, NULL, 0);
}
static int do_keyctl(void) { return (int)syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0); }
static int do_io_uring(void) {
    char params[120] = {0};
    long fd = syscall(SYS_io_uring_setup, 1, params);
    if (fd >= 0)
        close((int)fd);
    return fd < 0 ? -1 : 0;
}
static int do_kexec(void) { return (int)syscall(SYS_kexec_load, 0, 0, NULL, 0); }
static int do_reboot(void) {
    // CAD_OFF only changes what ctrl-alt-del does; in a PID namespace the
    // kernel refuses it with EINVAL once a filter and the capability let it through.
    return (int)syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, NULL);
}
static int do_bpf(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    if (fd >= 0)
        close((int)fd);
    return fd < 0 ? -1 : 0;
}
static int do_perf(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.exclude_kernel = 1;
    long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    if (fd >= 0)
        close((int)fd);
    return fd < 0 ? -1 : 0;
}
// PTRACE_SEIZE does not stop the tracee; the child's exit detaches it.
static int do_ptrace_pid1(void) { return (int)ptrace(PTRACE_SEIZE, 1, 0, 0); }
static int do_ptrace_parent(void) { return (int)ptrace(PTRACE_SEIZE, getppid(), 0, 0); }
static int do_userfaultfd(void) {
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
    if (fd >= 0)
        close((int)fd);
    return fd < 0 ? -1 : 0;
}
static int do_personality(void) { return personality(PER_LINUX | ADDR_NO_RANDOMIZE) < 0 ? -1 : 0; }
static int open_socket(int domain, int type, int protocol) {
    int fd = socket(domain, type, protocol);
    if (fd >= 0)
        close(fd);
    return fd < 0 ? -1 : 0;
}
static int do_raw_socket(void) { return open_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); }
static int do_vsock(void) { return open_socket(40 /* AF_VSOCK */, SOCK_STREAM, 0); }
static int do_alg(void) { return open_socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0); }
// O_TRUNC makes the kernel check for a read-only mount before permissions:
// EROFS says the mount is read-only whoever asks. (Nothing is written.)
static int do_write(const char *path) {
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}
static int do_sysrq(void) { return do_write("/proc/sysrq-trigger"); }
static int do_proc_sys_kernel(void) { return do_write("/proc/sys/kernel/core_pattern"); }
// Writable by the root of the container's own network namespace, unless /proc/sys is read-only.
static int do_proc_sys_net(void) { return do_write("/proc/sys/net/ipv4/ping_group_range"); }
static int do_proc1_exe(void) {
    int fd = open("/proc/1/exe", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
    return fd < 0 ? -1 : 0;
}

// A masked file is /dev/null: a character device that reads empty.
static const char *read_check(const char *path) {
    static char buffer[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return result(-1);
    struct stat st;
    fstat(fd, &st);
    if (S_ISCHR(st.st_mode)) {
        close(fd);
        return "masked";
    }
    char data[4096];
    ssize_t n = read(fd, data, sizeof data);
    close(fd);
    if (n < 0)
        return result(-1);
    snprintf(buffer, sizeof buffer, "read%zd", n);
    return buffer;
}

// A masked directory is an empty read-only tmpfs.
static const char *list_check(const char *path) {
    DIR *dir = opendir(path);
    if (!dir)
        return result(-1);
    int entries = 0;
    for (struct dirent *e; (e = readdir(dir));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            entries++;
    closedir(dir);
    return entries ? "listed" : "empty";
}

// Descriptors above stdio, but for the one reading the directory.
static const char *extra_fds(void) {
    static char buffer[256];
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return result(-1);
    buffer[0] = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(dir))
            continue;
        size_t used = strlen(buffer);
        snprintf(buffer + used, sizeof buffer - used, "%s%d", used ? "," : "", fd);
    }
    closedir(dir);
    return buffer[0] ? buffer : "none";
}

static const char *status_field(const char *field) {
    static char value[64];
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t length = strlen(field);
    strcpy(value, "missing");
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, length) && line[length] == ':') {
            char *v = line + length + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(value, sizeof value, "%s", v);
        }
    }
    if (f)
        fclose(f);
    return value;
}

struct check {
    const char *name;
    int (*attempt)(void);
};
static const struct check attempts[] = {
    {"mount", do_mount}, {"unshare_user", do_unshare_user}, {"unshare_mount", do_unshare_mount},
    {"clone_newns", do_clone_newns}, {"clone3", do_clone3}, {"sethostname", do_sethostname},
    {"keyctl", do_keyctl}, {"io_uring_setup", do_io_uring}, {"kexec_load", do_kexec}, {"reboot", do_reboot},
    {"bpf", do_bpf}, {"perf_event_open", do_perf}, {"ptrace_pid1", do_ptrace_pid1}, {"ptrace_parent", do_ptrace_parent},
    {"userfaultfd", do_userfaultfd}, {"personality", do_personality}, {"raw_socket", do_raw_socket},
    {"af_vsock", do_vsock}, {"af_alg", do_alg}, {"write_sysrq_trigger", do_sysrq},
    {"write_proc_sys_kernel", do_proc_sys_kernel}, {"write_proc_sys_net", do_proc_sys_net},
    {"open_proc1_exe", do_proc1_exe},
};

static int wanted(int argc, char **argv, const char *name) {
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name))
            return 1;
    return 0;
}

// Watches for any process whose /proc/PID/exe opens and is urun's binary.
static int watch(double seconds, const char *identity) {
    unsigned long long dev = 0, ino = 0;
    sscanf(identity, "%llu:%llu", &dev, &ino);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long tried = 0, opened = 0, reached = 0;
    char self[16];
    snprintf(self, sizeof self, "%d", getpid());
    do {
        DIR *proc = opendir("/proc");
        for (struct dirent *e; proc && (e = readdir(proc));) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9' || !strcmp(e->d_name, self))
                continue;
            char path[300];
            snprintf(path, sizeof path, "/proc/%s/exe", e->d_name);
            tried++;
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            opened++;
            struct stat st;
            if (fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
                reached++;
                printf("reached pid %s\n", e->d_name);
            }
            close(fd);
        }
        if (proc)
            closedir(proc);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
    printf("watch tried=%ld opened=%ld reached=%ld\n", tried, opened, reached);
    return reached ? 1 : 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && !strcmp(argv[1], "watch"))
        return watch(atof(argv[2]), argv[3]);
    if (wanted(argc, argv, "fds"))
        printf("fds=%s\n", extra_fds());
    if (wanted(argc, argv, "caps"))
        printf("caps=%s\n", status_field("CapEff"));
    if (wanted(argc, argv, "capbnd"))
        printf("capbnd=%s\n", status_field("CapBnd"));
    if (wanted(argc, argv, "capinh"))
        printf("capinh=%s\n", status_field("CapInh"));
    if (wanted(argc, argv, "seccomp"))
        printf("seccomp=%s\n", status_field("Seccomp"));
    if (wanted(argc, argv, "no_new_privs"))
        printf("no_new_privs=%s\n", status_field("NoNewPrivs"));
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        if (!wanted(argc, argv, attempts[i].name))
            continue;
        // PID 1 checks mean something only under --init, where PID 1 is urun.
        int about_pid1 = attempts[i].attempt == do_ptrace_pid1 || attempts[i].attempt == do_proc1_exe;
        printf("%s=%s\n", attempts[i].name, about_pid1 && getpid() == 1 ? "self" : in_child(attempts[i].attempt));
    }
    const char *reads[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/interrupts", "/proc/sched_debug"};
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++)
        if (wanted(argc, argv, reads[i]))
            printf("%s=%s\n", reads[i], read_check(reads[i]));
    const char *lists[] = {"/proc/acpi", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        if (wanted(argc, argv, lists[i]))
            printf("%s=%s\n", lists[i], list_check(lists[i]));
    return 0;
}
