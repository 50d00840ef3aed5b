/*
 * NanoGrid runner: the init (PID 1) of every function container.
 *
 * It listens on a Unix socket in a folder only root can enter, takes one run at a time
 * from the agent, starts the function as the unprivileged sandbox user (itself, or
 * through a pre-started Python zygote that forks each run), keeps the first bytes of its
 * stdout and stderr apart, enforces its timeout, and when the run ends kills every
 * process the run started and checks that none is left before it answers. It reaps
 * every orphan of the container. The function cannot signal it or the zygote: they run
 * as root, the function as another user, and the container has no capability but the
 * runner's SETUID, SETGID and KILL.
 *
 * In handler mode (handler.c) the function's process lives on between runs: only every
 * other process of a call is killed at its end.
 *
 * The wire format (frames, their letters and fields) is in protocol.h; what runner.c and
 * handler.c share is in runner.h.
 *
 * Built statically (see runner/build.sh) so it runs in any image, even one with nothing
 * but /bin/sh.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/openat2.h>

#include "runner.h"
#include <time.h>
#include <unistd.h>

#define DRAIN_MS 1000
#define ZYGOTE_START_MS 20000

/* ---------- framing ---------- */



/* ---------- the run ---------- */



/* The zygote's life: off (none, or --lazy before the first run), starting, ready, failed. */
typedef enum { ZYGOTE_OFF, ZYGOTE_STARTING, ZYGOTE_IS_READY, ZYGOTE_HAS_FAILED } zygote_state_t;
static const char *const ZYGOTE_STATE_NAMES[] = {"off", "starting", "ready", "failed"};

run_t run;
int agent_fd = -1;
static pid_t zygote_pid = -1;
static int zygote_fd = -1;
static zygote_state_t zygote_state = ZYGOTE_OFF;
static int64_t zygote_started_us;
/* With --lazy the zygote starts when the agent asks (FRAME_ZYGOTE: it expects the
 * container to serve again), never beside a run: a cold start's container that serves
 * once never pays for it. */
static char **zygote_argv;
static int zygote_wanted;

static void announce_zygote(void) {
  kv_t kv = {0};
  kv_add(&kv, "zygote=%s", ZYGOTE_STATE_NAMES[zygote_state]);
  send_frame(agent_fd, FRAME_HELLO, kv.buf, kv.len);
  free(kv.buf);
}

void reap_orphans(void) {
  int st;
  pid_t p;
  while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
    if (!run.via_zygote && run.active && p == run.pid && !run.exited) {
      run.exited = 1;
      run.status = st;
      run.ended_us = now_us();
    }
    if (handler_reaped(p)) continue;
    if (p == zygote_pid) {
      logf_("zygote exited (status %d)", st);
      zygote_pid = -1;
      zygote_state = ZYGOTE_HAS_FAILED;
      if (zygote_fd >= 0) close(zygote_fd);
      zygote_fd = -1;
      announce_zygote();
    }
  }
}

void release_hold(int go);
static void start_zygote(char **argv);

/* No run: every descriptor closed, every buffer freed, every field back to its rest. */
void run_reset(void) {
  memset(&run, 0, sizeof run);
  run.timer_fd = run.out.fd = run.err.fd = run.hold_fd = run.exec_status_fd = -1;
  run.out.spool_fd = run.err.spool_fd = -1;
}

void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* The one teardown of a run, whether it ended or never started. */
void run_release(void) {
  int *fds[] = {&run.out.fd, &run.err.fd, &run.hold_fd, &run.exec_status_fd, &run.timer_fd, &run.out.spool_fd, &run.err.spool_fd};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) close_fd(fds[i]);
  free(run.out.data);
  free(run.err.data);
  free((char *)run.out.spool_path);
  free((char *)run.err.spool_path);
  run_reset();
}

/* Kills whatever the run left behind, so its pipes close and nothing outlives it; returns leftovers. */
static int end_everything(void) {
  kill_user(run.uid);
  int64_t deadline = now_us() + DRAIN_MS * 1000;
  while ((run.out.fd >= 0 || run.err.fd >= 0) && now_us() < deadline) {
    struct pollfd p[2] = {{.fd = run.out.fd, .events = POLLIN}, {.fd = run.err.fd, .events = POLLIN}};
    int n = poll(p, 2, 50);
    if (n > 0) {
      if (run.out.fd >= 0 && p[0].revents) capture_read(&run.out);
      if (run.err.fd >= 0 && p[1].revents) capture_read(&run.err);
    }
    reap_orphans();
  }
  close_fd(&run.out.fd);
  close_fd(&run.err.fd);
  int leftovers = clean_up();
  if (leftovers == 0) remove_ipc(run.uid);
  return leftovers;
}

static void finish_run(void) {
  release_hold(0);
  /* A handler that answered may stay (handler.c): only every other process of the call dies. */
  int kept = run.via_handler && handler_settle();
  int leftovers = kept ? 0 : end_everything();

  int code = -1, sig = 0;
  if (WIFEXITED(run.status)) code = WEXITSTATUS(run.status);
  else if (WIFSIGNALED(run.status)) {
    sig = WTERMSIG(run.status);
    /* What a shell reports for a child killed by a signal: the contract's exit code. */
    code = 128 + sig;
  }
  kv_t kv = {0};
  kv_add(&kv, "code=%d", code);
  kv_add(&kv, "signal=%d", sig);
  kv_add(&kv, "timed_out=%d", run.timed_out);
  kv_add(&kv, "duration_us=%lld", (long long)(run.ended_us - run.started_us));
  kv_add(&kv, "out_total=%zu", run.out.total);
  kv_add(&kv, "err_total=%zu", run.err.total);
  kv_add(&kv, "out_spooled=%zu", run.out.spooled);
  kv_add(&kv, "err_spooled=%zu", run.err.spooled);
  kv_add(&kv, "clean=%d", leftovers == 0);
  kv_add(&kv, "leftovers=%d", leftovers);
  if (run.via_handler) handler_report(&kv, kept);
  send_frame(agent_fd, FRAME_EXIT, kv.buf, kv.len);
  send_chunks(agent_fd, FRAME_STDOUT, run.out.data, run.out.kept);
  send_chunks(agent_fd, FRAME_STDERR, run.err.data, run.err.kept);
  if (run.via_handler) {
    handler_send_answer();
    handler_end_call(kept);
  }
  send_frame(agent_fd, FRAME_DONE, NULL, 0);
  free(kv.buf);
  run_release();
  if (zygote_wanted && zygote_pid < 0 && zygote_state == ZYGOTE_OFF) start_zygote(zygote_argv);
}

void fail_start(const char *why) {
  kv_t kv = {0};
  kv_add(&kv, "error=%s", why);
  send_frame(agent_fd, FRAME_FAILED, kv.buf, kv.len);
  free(kv.buf);
}


extern char **environ;

/* The function sees the container's environment (the image's ENV, as docker exec gave
 * it), overridden by the request's entries. */
static void merge_environ(request_t *r) {
  char *merged[MAX_ITEMS];
  int m = 0;
  for (char **e = environ; *e && m < MAX_ITEMS - 1; e++) {
    const char *eq = strchr(*e, '=');
    size_t k = eq ? (size_t)(eq - *e) : strlen(*e);
    int overridden = 0;
    for (int i = 0; i < r->envc; i++)
      if (!strncmp(r->envp[i], *e, k) && r->envp[i][k] == '=') overridden = 1;
    if (!overridden) merged[m++] = *e;
  }
  for (int i = 0; i < r->envc && m < MAX_ITEMS - 1; i++) merged[m++] = r->envp[i];
  memcpy(r->envp, merged, sizeof(char *) * (size_t)m);
  r->envc = m;
}

static int parse_request(unsigned char *payload, size_t n, request_t *r) {
  memset(r, 0, sizeof *r);
  r->uid = r->gid = 65534;
  r->timeout_ms = 10000;
  r->out_limit = 1024 * 1024;
  for (size_t i = 0; i < n;) {
    char *s = (char *)payload + i;
    size_t l = strnlen(s, n - i);
    i += l + 1;
    char *eq = strchr(s, '=');
    if (!eq) continue;
    *eq = 0;
    char *v = eq + 1;
    if (!strcmp(s, "mode")) r->mode = v;
    else if (!strcmp(s, "cwd")) r->cwd = v;
    else if (!strcmp(s, "stdin")) r->stdin_path = v;
    else if (!strcmp(s, "uid")) r->uid = atol(v);
    else if (!strcmp(s, "gid")) r->gid = atol(v);
    else if (!strcmp(s, "timeout_ms")) r->timeout_ms = atol(v);
    else if (!strcmp(s, "out_limit")) r->out_limit = atol(v);
    else if (!strcmp(s, "spool_limit")) r->spool_limit = atol(v);
    else if (!strcmp(s, "spool_out")) r->spool_out = v;
    else if (!strcmp(s, "spool_err")) r->spool_err = v;
    else if (!strcmp(s, "hold")) r->hold = atol(v);
    else if (!strcmp(s, "handler_key")) r->handler_key = v;
    else if (!strcmp(s, "ctx")) r->ctx = v;
    else if (!strcmp(s, "arg") && r->argc < MAX_ITEMS - 1) r->argv[r->argc++] = v;
    else if (!strcmp(s, "env") && r->envc < MAX_ITEMS - 1) r->envp[r->envc++] = v;
  }
  if (!r->mode || !r->cwd) return -1;
  merge_environ(r);
  /* Never run the function as root or as the runner's own user. */
  if (r->uid <= 0 || r->gid <= 0) return -1;
  if (r->out_limit < 0 || r->out_limit > 256L * 1024 * 1024) return -1;
  return 0;
}

/* In a child: the runner's blocked signals and handlers are not the child's. */
void reset_signals(void) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
}

/* The function's processes go first when the container runs out of memory: the kernel
 * then kills them, not the runner or the zygote (raising the score needs no privilege). */
void prefer_for_oom(void) {
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t ignored = write(fd, "1000", 4);
    (void)ignored;
    close(fd);
  }
}

/* PATH lookup in the function's environment, as a shell would. */
void exec_in_path(char *const argv[], char *const envp[]) {
  if (strchr(argv[0], '/')) {
    execve(argv[0], argv, envp);
    return;
  }
  const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (int i = 0; envp[i]; i++)
    if (!strncmp(envp[i], "PATH=", 5)) path = envp[i] + 5;
  char buf[4096];
  for (const char *p = path; *p;) {
    const char *end = strchr(p, ':');
    size_t l = end ? (size_t)(end - p) : strlen(p);
    snprintf(buf, sizeof buf, "%.*s/%s", (int)l, p, argv[0]);
    execve(buf, argv, envp);
    if (!end) break;
    p = end + 1;
  }
}

/* Whether the command started; if not, the reason goes to stderr as a shell would put it (127). */
static void read_exec_status(void) {
  if (run.exec_status_fd < 0) return;
  int e = 0;
  ssize_t got;
  while ((got = read(run.exec_status_fd, &e, sizeof e)) < 0 && errno == EINTR) {
  }
  close(run.exec_status_fd);
  run.exec_status_fd = -1;
  if (got != (ssize_t)sizeof e) return;
  char msg[512];
  int l = snprintf(msg, sizeof msg, "%s: %s\n", run.exec_name, strerror(e));
  if (l < 0) return;
  run.err.total += (size_t)l;
  capture_keep(&run.err, msg, (size_t)l);
}

/* FRAME_GO from the agent: the held process may run now (go=1), or is called off (go=0). */
void release_hold(int go) {
  if (run.hold_fd < 0) return;
  if (go) {
    ssize_t ignored = write(run.hold_fd, "g", 1);
    (void)ignored;
  }
  close(run.hold_fd);
  run.hold_fd = -1;
  read_exec_status();
}

/* A run that could not start: close what it opened, forget it, tell the agent. */
static void abandon_run(const char *why) {
  run_release();
  fail_start(why);
}


void close_ends(child_ends_t *e) {
  close_fd(&e->in);
  close_fd(&e->out);
  close_fd(&e->err);
  close_fd(&e->hold);
}

void announce_started(void) {
  kv_t kv = {0};
  kv_add(&kv, "pid=%d", run.pid);
  send_frame(agent_fd, FRAME_STARTED, kv.buf, kv.len);
  free(kv.buf);
}

/*
 * Opens the run's pipes and stdin (its input file when the agent names one, never through
 * a link; else /dev/null) and sets up its captures; the child's ends go in `ends`.
 */
const char *open_run(const request_t *r, child_ends_t *ends) {
  int out[2], err[2], hold[2] = {-1, -1};
  *ends = (child_ends_t){-1, -1, -1, -1};
  if (pipe2(out, O_CLOEXEC) < 0) return "pipe";
  if (pipe2(err, O_CLOEXEC) < 0) {
    close(out[0]);
    close(out[1]);
    return "pipe";
  }
  int has_input = r->stdin_path && *r->stdin_path;
  int in = has_input ? open_no_links(r->stdin_path, O_RDONLY, 0) : open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    close(out[0]);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    return "stdin";
  }
  if (r->hold && pipe2(hold, O_CLOEXEC) < 0) hold[0] = hold[1] = -1;
  run_begin(r, out[0], err[0]);
  run.hold_fd = hold[1];
  *ends = (child_ends_t){in, out[1], err[1], hold[0]};
  return NULL;
}

/* A run's record from its request, reading its output from `out_fd` and `err_fd`. */
void run_begin(const request_t *r, int out_fd, int err_fd) {
  run_reset();
  run.uid = (uid_t)r->uid;
  run.gid = (gid_t)r->gid;
  run.via_zygote = !strcmp(r->mode, "zygote");
  run.out = (capture_t){.limit = (size_t)r->out_limit, .fd = out_fd, .spool_fd = -1};
  run.err = (capture_t){.limit = (size_t)r->out_limit, .fd = err_fd, .spool_fd = -1};
  if (r->spool_limit > 0 && r->spool_out && r->spool_err) {
    /* Copies: the request's buffer is not kept past this call. */
    run.out.spool_path = strdup(r->spool_out);
    run.err.spool_path = strdup(r->spool_err);
    run.out.spool_limit = run.err.spool_limit = (size_t)r->spool_limit;
  }
  fcntl(out_fd, F_SETFL, O_NONBLOCK);
  fcntl(err_fd, F_SETFL, O_NONBLOCK);
  run.started_us = now_us();
}

/* Hands the run to the zygote, with the child's ends as SCM_RIGHTS; its pid comes in its ZYGOTE_PID reply. */
static const char *start_via_zygote(const request_t *r, child_ends_t *ends) {
  kv_t kv = {0};
  kv_add(&kv, "cwd=%s", r->cwd);
  kv_add(&kv, "uid=%ld", r->uid);
  kv_add(&kv, "gid=%ld", r->gid);
  kv_add(&kv, "hold=%d", ends->hold >= 0);
  for (int i = 0; i < r->argc; i++) kv_put(&kv, "arg=", r->argv[i]);
  for (int i = 0; i < r->envc; i++) kv_put(&kv, "env=", r->envp[i]);
  int fds[4] = {ends->in, ends->out, ends->err, ends->hold};
  size_t nfds = ends->hold >= 0 ? 4 : 3;
  char ctrl[CMSG_SPACE(sizeof fds)];
  memset(ctrl, 0, sizeof ctrl);
  unsigned char hdr[5];
  uint32_t len = (uint32_t)kv.len + 1;
  hdr[0] = len >> 24, hdr[1] = len >> 16, hdr[2] = len >> 8, hdr[3] = len, hdr[4] = FRAME_RUN;
  struct iovec iov[2] = {{hdr, 5}, {kv.buf, kv.len}};
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = ctrl, .msg_controllen = CMSG_SPACE(nfds * sizeof(int))};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
  memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
  ssize_t sent = sendmsg(zygote_fd, &msg, 0);
  size_t want = 5 + kv.len;
  free(kv.buf);
  close_ends(ends);
  if (sent < (ssize_t)want) return "zygote unreachable";
  run.active = 1;
  run.pid = 0;
  return NULL;
}

/* In the forked child: wait for the go (the agent moves it into the run's cgroup meanwhile), become the sandbox user, exec. */
void exec_child(const request_t *r, const child_ends_t *ends, int status_fd, int extra_fd) {
  reset_signals();
  setsid();
  dup2(ends->in, 0);
  dup2(ends->out, 1);
  dup2(ends->err, 2);
  if (ends->hold >= 0) {
    /* The pipe closing without a byte means the run was called off. */
    char go;
    ssize_t got;
    while ((got = read(ends->hold, &go, 1)) < 0 && errno == EINTR) {
    }
    if (got != 1) _exit(125);
  }
  /* A handler's socket to the runner (handler.c), on fd 3: above 2, so never one of the ends. */
  if (extra_fd >= 0 && dup2(extra_fd, 3) < 0) _exit(125);
  prefer_for_oom();
  int e = 0;
  if (setgroups(0, NULL) < 0 || setgid((gid_t)r->gid) < 0 || setuid((uid_t)r->uid) < 0) e = errno;
  else if (chdir(r->cwd) < 0) e = errno;
  else {
    exec_in_path(r->argv, r->envp);
    e = errno;
  }
  ssize_t ignored = write(status_fd, &e, sizeof e);
  (void)ignored;
  _exit(127);
}

/* Starts the command itself: fork, then exec as the sandbox user (with `extra_fd` on its fd 3, if any). */
const char *start_exec(request_t *r, child_ends_t *ends, int extra_fd) {
  r->argv[r->argc] = NULL;
  r->envp[r->envc] = NULL;
  int status_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) < 0) {
    close_ends(ends);
    return "pipe";
  }
  pid_t pid = fork();
  if (pid == 0) exec_child(r, ends, status_pipe[1], extra_fd);
  close_ends(ends);
  close(status_pipe[1]);
  run.active = 1;
  run.pid = pid;
  run.exec_status_fd = status_pipe[0];
  snprintf(run.exec_name, sizeof run.exec_name, "%s", r->argv[0]);
  if (pid < 0) return "fork";
  /* A held child only execs once released: its exec status is read then. */
  if (run.hold_fd < 0) read_exec_status();
  return NULL;
}

/* FRAME_RUN: one run at a time, started by the zygote or by the runner, then timed. */
static void start_run(unsigned char *payload, size_t n) {
  request_t r;
  if (run.active) return fail_start("busy");
  if (parse_request(payload, n, &r) < 0) return fail_start("bad request");
  int via_zygote = !strcmp(r.mode, "zygote");
  int via_handler = !strcmp(r.mode, "handler");
  if (via_zygote && (zygote_fd < 0 || zygote_state != ZYGOTE_IS_READY)) return fail_start("zygote not ready");
  if (r.argc == 0) return fail_start("no command");
  /* No handler lives on into a run of another kind: that run starts with nothing of it. */
  if (!via_handler) handler_drop();
  const char *failed;
  if (via_handler) failed = handler_start_call(&r);
  else {
    child_ends_t ends;
    failed = open_run(&r, &ends);
    if (failed) return fail_start(failed);
    failed = via_zygote ? start_via_zygote(&r, &ends) : start_exec(&r, &ends, -1);
  }
  if (failed) return abandon_run(failed);
  run.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  struct itimerspec its = {.it_value = {r.timeout_ms / 1000, (r.timeout_ms % 1000) * 1000000}};
  timerfd_settime(run.timer_fd, 0, &its, NULL);
  if (!via_zygote) announce_started();
}

/* The value of a one-field reply (pid=, status=). */
static int field_value(const unsigned char *payload) {
  const char *eq = strchr((const char *)payload, '=');
  return atoi(eq ? eq + 1 : "0");
}

static void handle_zygote_frame(char type, unsigned char *payload) {
  if (type == ZYGOTE_READY) {
    zygote_state = ZYGOTE_IS_READY;
    announce_zygote();
    return;
  }
  if (!run.active || !run.via_zygote) return;
  if (type == ZYGOTE_PID) {
    run.pid = field_value(payload);
    announce_started();
  } else if (type == ZYGOTE_EXIT || type == ZYGOTE_FAILED) {
    /* A failed fork: no process of the run exists. */
    run.exited = 1;
    run.status = type == ZYGOTE_EXIT ? field_value(payload) : 127 << 8;
    run.ended_us = now_us();
  }
}

static void start_zygote(char **argv) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    zygote_state = ZYGOTE_HAS_FAILED;
    return;
  }
  zygote_started_us = now_us();
  pid_t pid = fork();
  if (pid == 0) {
    reset_signals();
    if (sv[1] == 3) fcntl(3, F_SETFD, 0);
    else dup2(sv[1], 3);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "PYTHONUNBUFFERED=1", NULL};
    char *env_path = getenv("PATH");
    char pathbuf[4096];
    if (env_path) {
      snprintf(pathbuf, sizeof pathbuf, "PATH=%s", env_path);
      envp[0] = pathbuf;
    }
    exec_in_path(argv, envp);
    _exit(127);
  }
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    zygote_state = ZYGOTE_HAS_FAILED;
    return;
  }
  zygote_pid = pid;
  zygote_fd = sv[0];
  zygote_state = ZYGOTE_STARTING;
}

/* ---------- the event loop's steps ---------- */

static const char *sock_path;
static int signal_fd = -1, listen_fd = -1;
static reader_t agent_in = {.fd = -1}, zygote_in = {.fd = -1};

/* SIGCHLD, SIGTERM and SIGINT arrive on a descriptor; SIGPIPE is ignored. */
static void configure_signals(void) {
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* The control socket, readable by root only (umask 077, in a 0700 folder). */
static int listen_on(const char *path) {
  listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) {
    logf_("socket path too long: %s", path);
    return 2;
  }
  strcpy(addr.sun_path, path);
  unlink(path);
  umask(077);
  if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listen_fd, 4) < 0) {
    logf_("cannot listen on %s: %s", path, strerror(errno));
    return 1;
  }
  return 0;
}

/* Returns 1 when the runner is to stop (SIGTERM, SIGINT): the run and the zygote die with it. */
static int handle_signals(void) {
  struct signalfd_siginfo si;
  while (read(signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      if (run.active) kill_user(run.uid);
      if (handler_pid() > 0) kill(handler_pid(), SIGKILL);
      if (zygote_pid > 0) kill(zygote_pid, SIGKILL);
      unlink(sock_path);
      return 1;
    }
  }
  reap_orphans();
  return 0;
}

/* One agent at a time: a new connection replaces the old one, and hears the zygote's state. */
static void accept_agent(void) {
  int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0) return;
  if (agent_fd >= 0) close(agent_fd);
  agent_fd = agent_in.fd = c;
  agent_in.len = 0;
  announce_zygote();
}

static void handle_agent_frame(char type, unsigned char *payload, size_t len) {
  if (type == FRAME_RUN) start_run(payload, len);
  else if (type == FRAME_GO && run.active) release_hold(1);
  else if (type == FRAME_KILL && run.active) {
    release_hold(0);
    kill_user(run.uid);
  } else if (type == FRAME_PING) send_frame(agent_fd, FRAME_PONG, NULL, 0);
  else if (type == FRAME_ZYGOTE && zygote_argv) {
    zygote_wanted = 1;
    if (!run.active && zygote_pid < 0 && zygote_state == ZYGOTE_OFF) start_zygote(zygote_argv);
  }
}

static void read_agent(void) {
  int got = fill(&agent_in);
  char type;
  unsigned char *payload;
  size_t len;
  if (got > 0) {
    while ((got = next_frame(&agent_in, &type, &payload, &len)) == 1) {
      handle_agent_frame(type, payload, len);
      free(payload);
    }
  }
  if (got < 0) {
    close(agent_fd);
    agent_fd = agent_in.fd = -1;
  }
}

static void read_zygote(void) {
  if (fill(&zygote_in) < 0) {
    close(zygote_fd);
    zygote_fd = zygote_in.fd = -1;
    zygote_state = ZYGOTE_HAS_FAILED;
    announce_zygote();
    return;
  }
  char type;
  unsigned char *payload;
  size_t len;
  while (next_frame(&zygote_in, &type, &payload, &len) == 1) {
    handle_zygote_frame(type, payload);
    free(payload);
  }
}

/* A zygote that does not start in time, or that dies under a run, fails: the run with it. */
static void watch_zygote(void) {
  if (zygote_state == ZYGOTE_STARTING && now_us() - zygote_started_us > ZYGOTE_START_MS * 1000LL) {
    logf_("zygote did not start in time");
    if (zygote_pid > 0) kill(zygote_pid, SIGKILL);
    zygote_state = ZYGOTE_HAS_FAILED;
    announce_zygote();
  }
  if (run.active && run.via_zygote && zygote_fd < 0 && !run.exited) {
    run.exited = 1;
    run.status = 127 << 8;
    run.ended_us = now_us();
  }
}

/* The run's timeout: its processes are killed; the end follows as any end does. */
static void handle_timeout(void) {
  uint64_t x;
  ssize_t ignored = read(run.timer_fd, &x, sizeof x);
  (void)ignored;
  if (run.active && !run.exited) {
    run.timed_out = 1;
    release_hold(0);
    kill_user(run.uid);
  }
}

enum { P_SIGNALS, P_LISTEN, P_AGENT, P_ZYGOTE, P_STDOUT, P_STDERR, P_TIMER, P_HANDLER, P_COUNT };

/* Waits for the next event on any of the runner's descriptors (a closed one is -1: skipped). */
static void wait_for_events(struct pollfd p[P_COUNT]) {
  /* A zygote started later (--lazy, or after a failure) has a new socket. */
  if (zygote_in.fd != zygote_fd) {
    zygote_in.fd = zygote_fd;
    zygote_in.len = 0;
  }
  int fds[P_COUNT] = {signal_fd, listen_fd, agent_fd, zygote_fd, run.out.fd, run.err.fd, run.timer_fd, handler_fd()};
  for (int i = 0; i < P_COUNT; i++) p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
  int n;
  while ((n = poll(p, P_COUNT, zygote_state == ZYGOTE_STARTING ? 100 : -1)) < 0 && errno == EINTR) {
  }
  if (n < 0)
    for (int i = 0; i < P_COUNT; i++) p[i].revents = 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: runner SOCKET [--lazy] [ZYGOTE-COMMAND ARGS...]\n  --lazy: the zygote starts on the agent's FRAME_ZYGOTE\n");
    return 2;
  }
  sock_path = argv[1];
  configure_signals();
  int failed = listen_on(sock_path);
  if (failed) return failed;
  if (argc > 3 && !strcmp(argv[2], "--lazy")) zygote_argv = argv + 3;
  else if (argc > 2) start_zygote(argv + 2);
  run_reset();

  for (;;) {
    struct pollfd p[P_COUNT];
    wait_for_events(p);
    if (p[P_SIGNALS].revents && handle_signals()) return 0;
    if (p[P_LISTEN].revents) accept_agent();
    if (agent_fd >= 0 && p[P_AGENT].revents) read_agent();
    if (zygote_fd >= 0 && p[P_ZYGOTE].revents) read_zygote();
    watch_zygote();
    if (run.out.fd >= 0 && p[P_STDOUT].revents) capture_read(&run.out);
    if (run.err.fd >= 0 && p[P_STDERR].revents) capture_read(&run.err);
    if (run.timer_fd >= 0 && p[P_TIMER].revents) handle_timeout();
    if (handler_fd() >= 0 && p[P_HANDLER].revents) handler_read();
    if (run.active) reap_orphans();
    if (run.active && run.exited) finish_run();
  }
}
