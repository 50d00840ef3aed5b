/* A run's stdout and stderr: the kept part, and the whole stream spooled to a file past it. */
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

/* Writes what the stream passes on to its spool file, opened when the stream first
 * overflows its kept part (which goes first). */
static void spool(capture_t *c, const char *buf, size_t n) {
  if (!c->spool_path || c->spooled >= c->spool_limit) return;
  if (c->spool_fd < 0) {
    c->spool_fd = open_no_links(c->spool_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (c->spool_fd < 0) {
      c->spool_path = NULL;
      return;
    }
    size_t first = c->kept < c->spool_limit ? c->kept : c->spool_limit;
    if (write_all(c->spool_fd, c->data, first) < 0) return;
    c->spooled = first;
  }
  size_t room = c->spool_limit - c->spooled;
  size_t w = n < room ? n : room;
  if (w && write_all(c->spool_fd, buf, w) == 0) c->spooled += w;
}

/* Keeps up to the limit of `n` bytes; returns how many it kept. */
size_t capture_keep(capture_t *c, const char *buf, size_t n) {
  size_t room = c->limit - c->kept;
  size_t take = n < room ? n : room;
  if (!take) return 0;
  if (c->kept + take > c->cap) {
    size_t cap = c->cap ? c->cap : 16384;
    while (cap < c->kept + take) cap *= 2;
    if (cap > c->limit) cap = c->limit;
    char *grown = realloc(c->data, cap);
    if (!grown) return 0;
    c->data = grown;
    c->cap = cap;
  }
  memcpy(c->data + c->kept, buf, take);
  c->kept += take;
  return take;
}

void capture_read(capture_t *c) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      close(c->fd);
      c->fd = -1;
      return;
    }
    c->total += (size_t)n;
    size_t take = capture_keep(c, buf, (size_t)n);
    /* After the kept part has this chunk's share: the spool starts with all of it. */
    if ((size_t)n > take) spool(c, buf + take, (size_t)n - take);
  }
}
