// trace-text: runs a command under ptrace, one instruction at a time, and
// writes the address of every instruction it executes, once each, in the
// order first reached, as hex lines to OUTPUT. Only the command's own process
// is followed (not its children: a traced child could not run the setuid
// newuidmap). Helpers/order-text uses it to find the functions a run reaches.
//
//   trace-text OUTPUT COMMAND [ARG...]
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS (1u << 22) // open addressing; a run reaches some 100,000 addresses

static uint64_t *seen;

static int first_time(uint64_t address) {
    uint64_t slot = (address * 0x9E3779B97F4A7C15ull) >> 42;
    while (seen[slot]) {
        if (seen[slot] == address)
            return 0;
        slot = (slot + 1) & (SLOTS - 1);
    }
    seen[slot] = address;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: trace-text OUTPUT COMMAND [ARG...]\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    seen = calloc(SLOTS, sizeof(*seen));
    if (!out || !seen) {
        perror("trace-text");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0); // stopped at the exec
    int deliver = 0;
    for (;;) {
        struct user_regs_struct regs;
        if (ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0 && regs.rip && first_time(regs.rip))
            fprintf(out, "%llx\n", regs.rip);
        if (ptrace(PTRACE_SINGLESTEP, pid, 0, deliver) != 0 || waitpid(pid, &status, 0) < 0)
            break;
        if (WIFEXITED(status) || WIFSIGNALED(status))
            break;
        // Signals the command gets (SIGCHLD from its container) are passed on.
        deliver = WIFSTOPPED(status) && WSTOPSIG(status) != SIGTRAP ? WSTOPSIG(status) : 0;
    }
    fclose(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
