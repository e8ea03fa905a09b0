/* The fastest Modbus TCP peer for the benchmarks: libmodbus's own server loop, 128 holding and 128
 * input registers with fixed values, any number of clients (select). Prints "READY <port>" once
 * listening; SIGTERM ends it.
 * Build: gcc -O2 -o modbus_server modbus_server.c $(pkg-config --cflags --libs libmodbus)
 * Usage: modbus_server PORT (0 picks a free port) */
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    signal(SIGPIPE, SIG_IGN);
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    modbus_mapping_t *map = modbus_mapping_new(0, 0, 128, 128);
    if (!ctx || !map) { fprintf(stderr, "modbus_server: %s\n", modbus_strerror(errno)); return 1; }
    /* Values with four distinct bytes per pair, so byte-order mistakes show. */
    for (int i = 0; i < 128; i++) {
        map->tab_registers[i] = (uint16_t)(0x4200 + i * 0x0101 + 0x11);
        map->tab_input_registers[i] = (uint16_t)(0x1234 + i);
    }
    int server = modbus_tcp_listen(ctx, 16);
    if (server < 0) { fprintf(stderr, "modbus_server: listen: %s\n", modbus_strerror(errno)); return 1; }
    struct sockaddr_in addr; socklen_t len = sizeof addr;
    getsockname(server, (struct sockaddr *)&addr, &len);
    printf("READY %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    fd_set all; FD_ZERO(&all); FD_SET(server, &all);
    int maxfd = server;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    for (;;) {
        fd_set ready = all;
        if (select(maxfd + 1, &ready, NULL, NULL, NULL) < 0) { if (errno == EINTR) continue; return 1; }
        for (int fd = 0; fd <= maxfd; fd++) {
            if (!FD_ISSET(fd, &ready)) continue;
            if (fd == server) {
                int c = accept(server, NULL, NULL);
                if (c >= 0) { FD_SET(c, &all); if (c > maxfd) maxfd = c; }
                continue;
            }
            modbus_set_socket(ctx, fd);
            int rc = modbus_receive(ctx, query);
            if (rc > 0) modbus_reply(ctx, query, rc, map);
            else if (rc < 0) { close(fd); FD_CLR(fd, &all); }
        }
    }
}
