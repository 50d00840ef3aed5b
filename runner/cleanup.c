/* Ending what a run left: its processes (as the sandbox user, without a fork) and its IPC objects. */
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

/*
 * Runs `fn` with the runner's real and effective uid set to the sandbox user's (the saved
 * uid stays 0, so root comes back after). With a non-zero effective uid the kernel clears
 * the effective capabilities, CAP_KILL included: what `fn` does reaches exactly that user's
 * processes and objects. No fork: a run that took every pid of the container cannot deny
 * its own clean-up. The runner is the namespace's init, so the function cannot signal it
 * meanwhile (init ignores signals it has no handler for).
 */
int as_user(uid_t uid, void (*fn)(void)) {
  if (setresuid(uid, uid, 0) < 0) return -1;
  fn();
  if (setresuid(0, 0, 0) < 0) {
    logf_("cannot become root again: %s", strerror(errno));
    _exit(70);
  }
  return 0;
}

/* kill(-1) is atomic with respect to fork: no child of the run can slip past it. */
static void kill_all_mine(void) { kill(-1, SIGKILL); }

/* Kills every process of `uid` in this PID namespace. */
void kill_user(uid_t uid) {
  if (as_user(uid, kill_all_mine) < 0) logf_("cannot act as uid %u: %s", (unsigned)uid, strerror(errno));
}

/* A /proc/<pid>/status's State, PPid and Uid (in that order in the file); 0 when it could not be read. */
static int proc_status(const char *pid, proc_entry_t *p) {
  char path[300];
  snprintf(path, sizeof path, "/proc/%s/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[256];
  int found = 0;
  while (found != 7 && fgets(line, sizeof line, f)) {
    if (sscanf(line, "State: %c", &p->state) == 1) found |= 1;
    else if (sscanf(line, "PPid: %d", &p->ppid) == 1) found |= 2;
    else if (sscanf(line, "Uid: %u", &p->uid) == 1) found |= 4;
  }
  fclose(f);
  return found == 7;
}

int for_each_proc(int (*visit)(const proc_entry_t *p, void *ctx), void *ctx) {
  DIR *d = opendir("/proc");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    proc_entry_t p = {.pid = atoi(e->d_name)};
    if (proc_status(e->d_name, &p)) n += visit(&p, ctx);
  }
  closedir(d);
  return n;
}

static int is_user(const proc_entry_t *p, void *uid) { return p->uid == *(uid_t *)uid; }

/* Processes of `uid` still present (zombies included). */
static int count_user(uid_t uid) { return for_each_proc(is_user, &uid); }

/* Kills what is left of the run until nothing of its user remains. Returns leftovers. */
int clean_up(void) {
  int left = 0;
  for (int i = 0; i < VERIFY_ROUNDS; i++) {
    kill_user(run.uid);
    reap_orphans();
    left = count_user(run.uid);
    if (left == 0) return 0;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
    reap_orphans();
    left = count_user(run.uid);
    if (left == 0) return 0;
  }
  return left;
}

/* Removes the System V IPC objects listed in /proc/sysvipc/<kind> (shm, msg, sem). */
static void remove_sysv(const char *kind) {
  char path[64];
  snprintf(path, sizeof path, "/proc/sysvipc/%s", kind);
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[512];
  if (!fgets(line, sizeof line, f)) { fclose(f); return; }
  while (fgets(line, sizeof line, f)) {
    long key, id;
    if (sscanf(line, "%ld %ld", &key, &id) != 2) continue;
    if (!strcmp(kind, "shm")) shmctl((int)id, IPC_RMID, NULL);
    else if (!strcmp(kind, "msg")) msgctl((int)id, IPC_RMID, NULL);
    else semctl((int)id, 0, IPC_RMID);
  }
  fclose(f);
}

static void remove_ipc_objects(void) {
  remove_sysv("shm");
  remove_sysv("msg");
  remove_sysv("sem");
  DIR *d = opendir("/dev/mqueue");
  if (!d) return;
  struct dirent *e;
  char p[300];
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "/dev/mqueue/%s", e->d_name);
    unlink(p);
  }
  closedir(d);
}

/*
 * Removes the IPC objects a run left (System V shared memory, queues and semaphores, POSIX
 * message queues): they outlive their processes and would be seen by the next run, and
 * shared memory is charged to the container. Done as the sandbox user, their owner: the
 * runner keeps no capability that could remove another user's.
 */
void remove_ipc(uid_t uid) {
  if (as_user(uid, remove_ipc_objects) < 0) logf_("cannot remove IPC objects as uid %u: %s", (unsigned)uid, strerror(errno));
}
