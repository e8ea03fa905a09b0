/* LD_PRELOAD fault injector for the integration tests: while the file named by $QUANTRAC_EROFS_TRIGGER
 * exists, every write-like call on a path under $QUANTRAC_EROFS_PREFIX fails with EROFS, as if the data
 * directory had been remounted read-only under the running daemon (which the kernel refuses to do to a
 * tmpfs with files open for writing). Built by the test suite with gcc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int active(void) {
    const char *trigger = getenv("QUANTRAC_EROFS_TRIGGER");
    return trigger && access(trigger, F_OK) == 0;
}

static int under_prefix(const char *path) {
    const char *prefix = getenv("QUANTRAC_EROFS_PREFIX");
    return prefix && path && strncmp(path, prefix, strlen(prefix)) == 0;
}

static int fd_under_prefix(int fd) {
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    return under_prefix(target);
}

#define BLOCK_FD(fd) do { if (active() && fd_under_prefix(fd)) { errno = EROFS; return -1; } } while (0)

ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "write");
    BLOCK_FD(fd);
    return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite");
    BLOCK_FD(fd);
    return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    static ssize_t (*real)(int, const void *, size_t, off64_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite64");
    BLOCK_FD(fd);
    return real(fd, buf, n, off);
}

int ftruncate(int fd, off_t len) {
    static int (*real)(int, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "ftruncate");
    BLOCK_FD(fd);
    return real(fd, len);
}

int ftruncate64(int fd, off64_t len) {
    static int (*real)(int, off64_t);
    if (!real) real = dlsym(RTLD_NEXT, "ftruncate64");
    BLOCK_FD(fd);
    return real(fd, len);
}

static int blocked_open(const char *path, int flags) {
    return active() && under_prefix(path) && (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC));
}

int open(const char *path, int flags, ...) {
    static int (*real)(const char *, int, ...);
    if (!real) real = dlsym(RTLD_NEXT, "open");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    if (blocked_open(path, flags)) { errno = EROFS; return -1; }
    return real(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    static int (*real)(const char *, int, ...);
    if (!real) real = dlsym(RTLD_NEXT, "open64");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    if (blocked_open(path, flags)) { errno = EROFS; return -1; }
    return real(path, flags, mode);
}

int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (!real) real = dlsym(RTLD_NEXT, "rename");
    if (active() && (under_prefix(from) || under_prefix(to))) { errno = EROFS; return -1; }
    return real(from, to);
}
