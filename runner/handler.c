/*
 * The handler mode: one long-lived process of the function per container (its module
 * imported once: runner/handler.py, runner/handler.js), called once per invocation.
 *
 * The process is started as a run's first process is (the sandbox user, the workspace,
 * held until the agent has placed it), with a socket to the runner on its fd 3 and its
 * stdout and stderr on pipes the runner keeps for its whole life. A call sends it the
 * input's path and the context (HANDLER_CALL); its answer (HANDLER_VALUE or
 * HANDLER_ERROR) ends the call. Then every process of the sandbox user is stopped at once
 * (kill(-1) as that user is atomic with respect to fork), every one but the handler is
 * killed, and once none is left the pipes and its socket are drained: nothing can write
 * to them any more, so what they hold is the call's. The handler stays stopped until the next call.
 * Anything else (a timeout, a crash, a process that will not die, a broken protocol)
 * ends it with everything else, as a plain run ends, and the next call starts it again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"

typedef struct {
  pid_t pid; /* -1: none */
  int fd;    /* the runner's end of its socket */
  /* The reading ends of its stdout and stderr, kept between calls (a call's capture holds them meanwhile). */
  int out_fd, err_fd;
  uid_t uid;
  char key[512];
  reader_t in;
  int ready;
  int64_t started_us, ready_us;
} handler_t;

static handler_t h = {.pid = -1, .fd = -1, .out_fd = -1, .err_fd = -1, .in = {.fd = -1}};

/* The current call's answer, and whether the call started the handler. */
static char answer_type;
static char *answer;
static size_t answer_len;
static int call_init;
static int64_t call_init_us;

int handler_fd(void) { return h.fd; }
pid_t handler_pid(void) { return h.pid; }

static void handler_close(void) {
  close_fd(&h.fd);
  close_fd(&h.out_fd);
  close_fd(&h.err_fd);
  free(h.in.buf);
  h.in = (reader_t){.fd = -1};
  h.pid = -1;
  h.key[0] = 0;
  h.ready = 0;
}

static void stop_all_mine(void) { kill(-1, SIGSTOP); }

/* Ends the handler and everything of its user: before a run of another kind, or another handler. */
void handler_drop(void) {
  if (h.pid <= 0) {
    handler_close();
    return;
  }
  pid_t pid = h.pid;
  kill(pid, SIGKILL);
  kill_user(h.uid);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  remove_ipc(h.uid);
  handler_close();
}

/* From the reaper: 1 when `p` was the handler. During a call its end is the call's (run.pid is it). */
int handler_reaped(pid_t p) {
  if (p <= 0 || p != h.pid) return 0;
  h.pid = -1;
  if (!(run.active && run.via_handler)) handler_close();
  return 1;
}

/* Whatever the handler sent after an earlier call's answer is not this call's. */
static void discard_input(void) {
  char buf[4096];
  while (h.fd >= 0 && read(h.fd, buf, sizeof buf) > 0) {
  }
  h.in.len = 0;
}

static int send_call(const char *input, const char *ctx) {
  kv_t kv = {0};
  kv_put(&kv, "input=", input);
  kv_put(&kv, "ctx=", ctx);
  int r = send_frame(h.fd, HANDLER_CALL, kv.buf, kv.len);
  free(kv.buf);
  return r;
}

/* A new handler process: started as exec mode starts a run's first process, with its socket on fd 3. */
static const char *start_handler(request_t *r, const char *key) {
  child_ends_t ends;
  const char *failed = open_run(r, &ends);
  if (failed) return failed;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    close_ends(&ends);
    return "socketpair";
  }
  int child_end = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
  close(sv[1]);
  if (child_end < 0) {
    close(sv[0]);
    close_ends(&ends);
    return "socketpair";
  }
  failed = start_exec(r, &ends, child_end);
  close(child_end);
  if (failed) {
    close(sv[0]);
    return failed;
  }
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  h.pid = run.pid;
  h.fd = sv[0];
  h.in = (reader_t){.fd = sv[0]};
  h.uid = (uid_t)r->uid;
  snprintf(h.key, sizeof h.key, "%s", key);
  h.ready = 0;
  h.started_us = now_us();
  call_init = 1;
  return NULL;
}

/* FRAME_RUN with mode=handler: the call goes to the live handler of this key, or to a new one. */
const char *handler_start_call(request_t *r) {
  const char *input = r->stdin_path ? r->stdin_path : "";
  const char *key = r->handler_key ? r->handler_key : "";
  const char *ctx = r->ctx ? r->ctx : "{}";
  if (strlen(key) >= sizeof h.key) return "bad request";
  /* The handler reads its input from the file: its stdin is /dev/null. */
  r->stdin_path = NULL;
  if (h.pid > 0 && (strcmp(h.key, key) || h.uid != (uid_t)r->uid)) handler_drop();
  answer_type = 0;
  answer_len = 0;
  call_init = 0;
  call_init_us = 0;
  if (h.pid <= 0) {
    handler_close();
    const char *failed = start_handler(r, key);
    if (failed) return failed;
  } else {
    run_begin(r, h.out_fd, h.err_fd);
    h.out_fd = h.err_fd = -1;
    run.active = 1;
    run.pid = h.pid;
    discard_input();
  }
  run.via_handler = 1;
  if (send_call(input, ctx) < 0) kill(h.pid, SIGKILL);
  else if (!call_init) kill(h.pid, SIGCONT);
  return NULL;
}

static void handle_frame(char type, unsigned char *payload, size_t len) {
  if (type == HANDLER_READY || type == HANDLER_VALUE || type == HANDLER_ERROR) {
    if (!h.ready) {
      h.ready = 1;
      h.ready_us = now_us();
      if (call_init) call_init_us = h.ready_us - h.started_us;
    }
  }
  if (type != HANDLER_VALUE && type != HANDLER_ERROR) return;
  if (!run.active || !run.via_handler || run.exited || answer_type) return;
  answer_type = type;
  answer = realloc(answer, len ? len : 1);
  memcpy(answer, payload, len);
  answer_len = len;
  run.exited = 1;
  /* The contract's exit status: 0 for a value, 1 for an exception (as a script's traceback). */
  run.status = type == HANDLER_VALUE ? 0 : 1 << 8;
  run.ended_us = now_us();
}

/* Its socket is readable: frames, or a broken protocol (the handler is killed, the reaper ends the call). */
void handler_read(void) {
  int got = fill(&h.in);
  char type;
  unsigned char *payload;
  size_t len;
  if (got > 0) {
    while ((got = next_frame(&h.in, &type, &payload, &len)) == 1) {
      handle_frame(type, payload, len);
      free(payload);
    }
  }
  if (got < 0) {
    close_fd(&h.fd);
    h.in.fd = -1;
    h.in.len = 0;
    if (h.pid > 0) kill(h.pid, SIGKILL);
  }
}

/* One process of the handler's user but the handler: SIGKILLed, and counted. A dead child
 * of the handler is its to reap when it runs again, and holds nothing but a pid. */
static int kill_other(const proc_entry_t *p, void *unused) {
  (void)unused;
  if (p->uid != h.uid || p->pid == h.pid || (p->state == 'Z' && p->ppid == h.pid)) return 0;
  if (p->state != 'Z') kill(p->pid, SIGKILL);
  return 1;
}

/* SIGKILLs every process of the handler's user but the handler; returns how many it found. */
static int kill_others(void) { return for_each_proc(kill_other, NULL); }

/* What is left in a pipe no process can write to any more. */
static void drain(capture_t *c) {
  if (c->fd >= 0) capture_read(c);
}

/*
 * What the stopped handler wrote to its socket after its answer (a second answer, the
 * start of a frame): this call's, never the next one's. Stopped, it writes no more.
 */
static int handler_stopped(void) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)h.pid);
  /* A signal is delivered when its target next runs: kill() returns before the stop. */
  for (int i = 0; i < 500; i++) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *end = strrchr(buf, ')');
    if (end && (end[2] == 'T' || end[2] == 't')) return 1;
    struct timespec ts = {0, 200 * 1000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

static void drain_socket(void) {
  unsigned char buf[65536];
  while (h.fd >= 0 && recv(h.fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
  h.in.len = 0;
}

/*
 * At a call's answer: 1 when the handler stays for the next call (stopped, nothing else
 * of its user left, the pipes drained); 0 when the call must end as a plain run does.
 */
int handler_settle(void) {
  if (h.pid <= 0 || !answer_type || run.timed_out || h.fd < 0) return 0;
  if (as_user(h.uid, stop_all_mine) < 0) return 0;
  int others = -1;
  for (int i = 0; i < VERIFY_ROUNDS && others != 0; i++) {
    others = kill_others();
    reap_orphans();
    if (others != 0) {
      struct timespec ts = {0, 2 * 1000 * 1000};
      nanosleep(&ts, NULL);
      reap_orphans();
      others = kill_others();
    }
  }
  if (others != 0 || h.pid <= 0) return 0;
  if (!handler_stopped()) return 0;
  drain(&run.out);
  drain(&run.err);
  drain_socket();
  /* A handler that closed its own stdout or stderr cannot serve another call. */
  return run.out.fd >= 0 && run.err.fd >= 0;
}

/* The EXIT frame's handler fields. */
void handler_report(kv_t *kv, int kept) {
  kv_add(kv, "handler=%s", kept ? "alive" : "gone");
  kv_add(kv, "handler_pid=%d", kept ? h.pid : 0);
  kv_add(kv, "init=%d", call_init);
  kv_add(kv, "init_us=%lld", (long long)call_init_us);
  kv_add(kv, "answer=%s", answer_type == HANDLER_VALUE ? "value" : answer_type == HANDLER_ERROR ? "error" : "none");
}

void handler_send_answer(void) {
  if (answer_type && answer_len) send_chunks(agent_fd, FRAME_RETURN, answer, answer_len);
  free(answer);
  answer = NULL;
  answer_len = 0;
  answer_type = 0;
}

/* The call is over: its pipes go back to the handler (kept), or the handler is forgotten. */
void handler_end_call(int kept) {
  if (kept) {
    h.out_fd = run.out.fd;
    h.err_fd = run.err.fd;
    run.out.fd = run.err.fd = -1;
  } else {
    if (h.pid > 0) kill(h.pid, SIGKILL);
    handler_close();
  }
}
