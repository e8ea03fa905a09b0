/* LD_PRELOAD shim that lets libserialport 0.1.1 open a pseudo-terminal (/dev/pts/N), for the serial
 * analyzer integration tests. Built by the test suite with gcc; never used in production.
 *
 * libserialport refuses a pty for two reasons:
 *   1. sp_get_port_by_name() lstat()s /sys/class/tty/<name> and readlink()s it to learn the transport;
 *      ptys have no such node (there is no /sys/class/tty/pts/N).
 *   2. sp_open() reads the modem lines with ioctl(TIOCMGET), which a pty rejects (ENOTTY).
 * The shim answers those calls for ptys only: /sys/class/tty/pts/N looks like a symlink to a virtual
 * device, and TIOCMGET/TIOCMSET/TIOCMBIS/TIOCMBIC on a descriptor whose device major is a pty slave
 * major (136-143) succeed with "DTR and RTS up". Every other call goes to the real function.
 * LIBSERIALPORT_DEBUG=1 shows what libserialport does. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <termios.h>
#include <unistd.h>

static const char sys_prefix[] = "/sys/class/tty/pts/";

static int is_pts_sys_node(const char *path) {
    return path && strncmp(path, sys_prefix, sizeof sys_prefix - 1) == 0 && path[sizeof sys_prefix - 1] != 0;
}

static void fake_link(struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFLNK | 0777;
    st->st_nlink = 1;
}

/* libserialport 0.1.1 was built against a glibc where lstat() is the __lxstat() wrapper. */
int __lxstat(int ver, const char *path, struct stat *st) {
    static int (*real)(int, const char *, struct stat *);
    if (is_pts_sys_node(path)) { fake_link(st); return 0; }
    if (!real) real = dlsym(RTLD_NEXT, "__lxstat");
    return real(ver, path, st);
}

/* Newer builds call lstat() directly. */
int lstat(const char *path, struct stat *st) {
    static int (*real)(const char *, struct stat *);
    if (is_pts_sys_node(path)) { fake_link(st); return 0; }
    if (!real) real = dlsym(RTLD_NEXT, "lstat");
    return real(path, st);
}

ssize_t readlink(const char *path, char *buf, size_t size) {
    static ssize_t (*real)(const char *, char *, size_t);
    if (is_pts_sys_node(path)) {
        /* A virtual device: neither "usb" nor "bluetooth" in the target, so libserialport says native. */
        const char target[] = "../../devices/virtual/tty/ptmx";
        size_t n = strlen(target) < size ? strlen(target) : size;
        memcpy(buf, target, n);
        return (ssize_t)n;
    }
    if (!real) real = dlsym(RTLD_NEXT, "readlink");
    return real(path, buf, size);
}

static int is_pty_slave(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) return 0;
    unsigned int major = major(st.st_rdev);
    return major >= 136 && major <= 143;
}

int ioctl(int fd, unsigned long request, ...) {
    static int (*real)(int, unsigned long, void *);
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if ((request == TIOCMGET || request == TIOCMSET || request == TIOCMBIS || request == TIOCMBIC) && is_pty_slave(fd)) {
        if (request == TIOCMGET && arg) *(int *)arg = TIOCM_DTR | TIOCM_RTS;
        return 0;
    }
    if (!real) real = dlsym(RTLD_NEXT, "ioctl");
    return real(fd, request, arg);
}
