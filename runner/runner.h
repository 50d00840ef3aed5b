/*
 * What the runner's parts share: runner.c (the event loop, runs, the zygote), handler.c
 * (the handler mode), capture.c (a run's output), cleanup.c (ending what a run left) and
 * frames.c (the wire format's framing). Types, and the functions one part calls in another.
 */
#ifndef NANOGRID_RUNNER_H
#define NANOGRID_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol.h"

#define MAX_ITEMS 4096
#define VERIFY_ROUNDS 100

/* A growable buffer of NUL-terminated key=value strings. */
typedef struct {
  char *buf;
  size_t len, cap;
} kv_t;

/* Reads frames from a connection as bytes arrive. */
typedef struct {
  int fd;
  unsigned char *buf;
  size_t len, cap;
} reader_t;

typedef struct {
  /* The kept part, grown as output comes (a trivial run's few bytes need no megabyte:
   * a buffer that large is mmapped, and unmapping it every run costs a TLB shootdown on
   * every CPU). */
  char *data;
  size_t kept, total, limit, cap;
  int fd;
  /* The whole stream, once it passes `limit`, up to spool_limit bytes: a file in the
   * control folder (root's), for the agent to store. */
  const char *spool_path;
  size_t spool_limit, spooled;
  int spool_fd;
} capture_t;

typedef struct {
  int active;
  int via_zygote;
  /* Handler mode (handler.c): the call went to the function's long-lived handler process. */
  int via_handler;
  pid_t pid;
  uid_t uid;
  gid_t gid;
  int exited;
  int status;
  int timed_out;
  int64_t started_us, ended_us;
  int timer_fd;
  /* Write end of the pipe the run's first process waits on until the agent says go (FRAME_GO). */
  int hold_fd;
  /* Read end of the exec-status pipe (exec mode): errno if the command could not start. */
  int exec_status_fd;
  char exec_name[256];
  capture_t out, err;
} run_t;

/* Reads the request's strings into argv/env arrays and settings. */
typedef struct {
  const char *mode, *cwd, *stdin_path;
  long uid, gid, timeout_ms, out_limit, hold, spool_limit;
  const char *spool_out, *spool_err;
  /* Handler mode: which handler (function, code version, entry point) and the call's context. */
  const char *handler_key, *ctx;
  char *argv[MAX_ITEMS];
  char *envp[MAX_ITEMS];
  int argc, envc;
} request_t;

/* The ends a run's first process gets: stdin, stdout, stderr and the hold pipe's reading end. */
typedef struct {
  int in, out, err, hold;
} child_ends_t;

extern run_t run;
extern int agent_fd;

void logf_(const char *fmt, ...);
int64_t now_us(void);
int open_no_links(const char *path, int flags, mode_t mode);
int send_frame(int fd, char type, const void *payload, size_t n);
void send_chunks(int fd, char type, const char *data, size_t n);
void kv_add(kv_t *kv, const char *fmt, ...);
void kv_put(kv_t *kv, const char *prefix, const char *value);
int next_frame(reader_t *r, char *type, unsigned char **payload, size_t *n);
int fill(reader_t *r);
size_t capture_keep(capture_t *c, const char *buf, size_t n);
void capture_read(capture_t *c);
int as_user(uid_t uid, void (*fn)(void));
void kill_user(uid_t uid);
void reap_orphans(void);
void remove_ipc(uid_t uid);
/* One process from /proc (cleanup.c reads them; handler.c kills by them). */
typedef struct {
  int pid;
  unsigned uid;
  char state;
  int ppid;
} proc_entry_t;
/* The sum of `visit` over every process in /proc; -1 when /proc cannot be read. */
int for_each_proc(int (*visit)(const proc_entry_t *p, void *ctx), void *ctx);
int clean_up(void);
int write_all(int fd, const void *buf, size_t n);
void run_reset(void);
void close_fd(int *fd);
void run_release(void);
void fail_start(const char *why);
void reset_signals(void);
void prefer_for_oom(void);
void exec_in_path(char *const argv[], char *const envp[]);
void release_hold(int go);
void announce_started(void);
const char *open_run(const request_t *r, child_ends_t *ends);
void close_ends(child_ends_t *e);
void exec_child(const request_t *r, const child_ends_t *ends, int status_fd, int extra_fd);
void run_begin(const request_t *r, int out_fd, int err_fd);
const char *start_exec(request_t *r, child_ends_t *ends, int extra_fd);

/* handler.c: the handler mode. */
int handler_fd(void);
pid_t handler_pid(void);
void handler_drop(void);
int handler_reaped(pid_t p);
const char *handler_start_call(request_t *r);
void handler_read(void);
int handler_settle(void);
void handler_report(kv_t *kv, int kept);
void handler_send_answer(void);
void handler_end_call(int kept);

#endif
