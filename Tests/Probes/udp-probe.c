// A UDP endpoint for the network tests (busybox's static nc has no UDP):
//   udp-probe serve PORT          answers each datagram with "pong:" + it, forever
//   udp-probe send IP PORT TEXT   sends TEXT, prints the answer (exit 1 after 1 s without one)
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET};
    char buffer[1024];
    if (argc == 3 && strcmp(argv[1], "serve") == 0) {
        address.sin_port = htons(atoi(argv[2]));
        if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) { perror("bind"); return 1; }
        for (;;) {
            struct sockaddr_in peer;
            socklen_t length = sizeof peer;
            ssize_t n = recvfrom(fd, buffer + 5, sizeof buffer - 5, 0, (struct sockaddr *)&peer, &length);
            if (n < 0) continue;
            memcpy(buffer, "pong:", 5);
            sendto(fd, buffer, n + 5, 0, (struct sockaddr *)&peer, length);
        }
    }
    if (argc == 5 && strcmp(argv[1], "send") == 0) {
        address.sin_port = htons(atoi(argv[3]));
        inet_pton(AF_INET, argv[2], &address.sin_addr);
        struct timeval timeout = {.tv_sec = 1};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        sendto(fd, argv[4], strlen(argv[4]), 0, (struct sockaddr *)&address, sizeof address);
        ssize_t n = recv(fd, buffer, sizeof buffer - 1, 0);
        if (n < 0) return 1;
        buffer[n] = 0;
        printf("%s\n", buffer);
        return 0;
    }
    fprintf(stderr, "usage: udp-probe serve PORT | send IP PORT TEXT\n");
    return 2;
}
