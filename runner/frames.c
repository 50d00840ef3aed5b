/* The runner's framing: frames and key=value payloads in protocol.h's format, and the small I/O helpers every part uses. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "runner.h"

void logf_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "runner: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Opens a path without following a symbolic link at any component (openat2's
 * RESOLVE_NO_SYMLINKS, Linux 5.6+); O_NOFOLLOW alone guards only the last one. Where the
 * kernel has no openat2, the last component is still guarded.
 */
int open_no_links(const char *path, int flags, mode_t mode) {
  struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .mode = (flags & O_CREAT) ? mode : 0, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
  if (fd < 0 && (errno == ENOSYS || errno == EPERM)) fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, mode);
  return (int)fd;
}

int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        poll(&pf, 1, 1000);
        continue;
      }
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int send_frame(int fd, char type, const void *payload, size_t n) {
  if (fd < 0) return -1;
  unsigned char hdr[5];
  uint32_t len = (uint32_t)(n + 1);
  hdr[0] = len >> 24;
  hdr[1] = len >> 16;
  hdr[2] = len >> 8;
  hdr[3] = len;
  hdr[4] = (unsigned char)type;
  if (write_all(fd, hdr, 5) < 0) return -1;
  return n ? write_all(fd, payload, n) : 0;
}

/* A stream's kept bytes as frames of at most FRAME_CHUNK bytes each: an output limit above the
 * largest frame still fits the protocol. */
void send_chunks(int fd, char type, const char *data, size_t n) {
  for (size_t off = 0; off < n; off += FRAME_CHUNK) send_frame(fd, type, data + off, n - off < FRAME_CHUNK ? n - off : FRAME_CHUNK);
}

void kv_add(kv_t *kv, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
  if (kv->len + (size_t)n + 1 > kv->cap) {
    kv->cap = (kv->len + (size_t)n + 1) * 2;
    kv->buf = realloc(kv->buf, kv->cap);
  }
  memcpy(kv->buf + kv->len, tmp, (size_t)n + 1);
  kv->len += (size_t)n + 1;
}

/* Adds prefix + value without the formatter's length limit (env values can be long). */
void kv_put(kv_t *kv, const char *prefix, const char *value) {
  size_t p = strlen(prefix), v = strlen(value);
  if (kv->len + p + v + 1 > kv->cap) {
    kv->cap = (kv->len + p + v + 1) * 2;
    kv->buf = realloc(kv->buf, kv->cap);
  }
  memcpy(kv->buf + kv->len, prefix, p);
  memcpy(kv->buf + kv->len + p, value, v + 1);
  kv->len += p + v + 1;
}

/* Returns 1 and fills type/payload when a whole frame is buffered; 0 when more is needed. */
int next_frame(reader_t *r, char *type, unsigned char **payload, size_t *n) {
  if (r->len < 5) return 0;
  uint32_t len = ((uint32_t)r->buf[0] << 24) | ((uint32_t)r->buf[1] << 16) | ((uint32_t)r->buf[2] << 8) | r->buf[3];
  if (len < 1 || len > FRAME_MAX) return -1;
  if (r->len < 4 + (size_t)len) return 0;
  *type = (char)r->buf[4];
  *n = len - 1;
  *payload = malloc(*n + 1);
  memcpy(*payload, r->buf + 5, *n);
  (*payload)[*n] = 0;
  memmove(r->buf, r->buf + 4 + len, r->len - 4 - len);
  r->len -= 4 + len;
  return 1;
}

int fill(reader_t *r) {
  if (r->cap - r->len < 65536) {
    r->cap = r->cap ? r->cap * 2 : 131072;
    if (r->cap > 2 * FRAME_MAX + 131072) return -1;
    r->buf = realloc(r->buf, r->cap);
  }
  ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
  if (n <= 0) return -1;
  r->len += (size_t)n;
  return 1;
}
