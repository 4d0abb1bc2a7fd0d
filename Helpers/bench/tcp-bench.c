// The two ends of a throughput measurement for Helpers/bench/run, built
// static so that the receiving end also runs inside a busybox container:
//
//   tcp-bench receive PORT             accepts one connection, reads it to
//                                      the end, closes it
//   tcp-bench send HOST PORT MEGABYTES sends MEGABYTES of zeros, shuts its
//                                      side down, waits for the receiver to
//                                      close, prints MB/s
//
// The time runs from connect to the receiver's close, so data still in
// buffers when the sender has written everything is counted too.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char chunk[1 << 16];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int receive(int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    int listener = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(listener, 1) != 0) {
        perror("tcp-bench: listen");
        return 1;
    }
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) return 1;
    while (read(fd, chunk, sizeof(chunk)) > 0) {}
    close(fd);
    return 0;
}

static int send_data(const char *host, int port, long megabytes) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) return 2;
    long total = megabytes * 1024 * 1024;
    double start = now();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        perror("tcp-bench: connect");
        return 1;
    }
    for (long sent = 0; sent < total;) {
        size_t want = sizeof(chunk) < (size_t)(total - sent) ? sizeof(chunk) : (size_t)(total - sent);
        ssize_t n = write(fd, chunk, want);
        if (n <= 0) {
            perror("tcp-bench: write");
            return 1;
        }
        sent += n;
    }
    shutdown(fd, SHUT_WR);
    while (read(fd, chunk, sizeof(chunk)) > 0) {}
    printf("%.0f\n", total / 1048576.0 / (now() - start));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "receive") == 0) return receive(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "send") == 0) return send_data(argv[2], atoi(argv[3]), atol(argv[4]));
    fprintf(stderr, "usage: tcp-bench receive PORT | tcp-bench send HOST PORT MEGABYTES\n");
    return 2;
}
