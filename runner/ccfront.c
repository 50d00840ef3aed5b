/*
 * NanoGrid compiler front: g++, c++, gcc and cc first on a C++ runtime's PATH
 * (/nanogrid/bin), so that run.sh still compiles on every run (the contract) but an
 * unchanged code version never runs the compiler again.
 *
 * A call is keyed by SHA-256 of: the front's version, the real compiler's path, the
 * working folder, every argument, the environment GCC reads, and a manifest of every
 * folder the function can write (its workspace, /tmp, /dev/shm: names, types, modes,
 * sizes, link targets and the content of every file). Everything else the compiler can
 * read (itself, system headers, libraries) is the image's, read-only, and the agent keeps
 * a separate cache per image id and per function: the key need not hash the compiler.
 *
 * A hit copies the kept output to the -o path and replays the compiler's stderr (and
 * leaves an empty <key>.hit for the agent to count). A miss
 * runs the compiler; when it succeeds, its output and stderr are left for the agent in
 * NANOGRID_BUILD_OUT, which it takes after the run (checked, bounded) into that
 * function's cache and gives to that function's containers only (NANOGRID_BUILD_CACHE,
 * root's and read-only here). Anything unusual (no -o, stdin, response files, dependency
 * output, plugins, too much to hash) runs the compiler as if the front were not there.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FRONT_VERSION "ngcc-1"
#define MAX_ENTRIES 4096
#define MAX_HASHED (64L << 20)
#define MAX_DEPTH 32
#define MAX_STDERR (64 << 10)

/* ---- SHA-256 (FIPS 180-4) ---- */
typedef struct {
  uint32_t h[8];
  uint64_t len;
  unsigned char buf[64];
  size_t n;
} sha256;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
    0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
    0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
    0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
    0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(sha256 *s, const unsigned char *p) {
  uint32_t w[64], a, b, c, d, e, f, g, h;
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha_init(sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->len = 0, s->n = 0;
}

static void sha_add(sha256 *s, const void *data, size_t len) {
  const unsigned char *p = data;
  s->len += len;
  while (len > 0) {
    size_t k = 64 - s->n < len ? 64 - s->n : len;
    memcpy(s->buf + s->n, p, k);
    s->n += k, p += k, len -= k;
    if (s->n == 64) sha_block(s, s->buf), s->n = 0;
  }
}

static void sha_hex(sha256 *s, char out[65]) {
  uint64_t bits = s->len * 8;
  unsigned char pad = 0x80, zero = 0, lenb[8];
  sha_add(s, &pad, 1);
  while (s->n != 56) sha_add(s, &zero, 1);
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha_add(s, lenb, 8);
  for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", s->h[i]);
}

static void sha_str(sha256 *s, const char *str) { sha_add(s, str, strlen(str) + 1); }

/* ---- the key ---- */
static long hashed_bytes, entries;
static const char *out_abs, *out_dir;

static int hash_file(sha256 *s, int dirfd, const char *name) {
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    hashed_bytes += n;
    if (hashed_bytes > MAX_HASHED) break;
    sha_add(s, buf, (size_t)n);
  }
  close(fd);
  return n == 0 ? 0 : -1;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A folder's manifest, names sorted: -1 when it cannot be read whole or is too big (the call is then not cached). */
static int hash_tree(sha256 *s, const char *path, int depth) {
  if (depth > MAX_DEPTH) return -1;
  int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return errno == ENOENT ? 0 : -1;
  DIR *d = fdopendir(dfd);
  if (!d) return close(dfd), -1;
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (++entries > MAX_ENTRIES) { rc = -1; break; }
    if (n == cap) {
      cap = cap ? 2 * cap : 32;
      char **grown = realloc(names, cap * sizeof *names);
      if (!grown) { rc = -1; break; }
      names = grown;
    }
    names[n++] = strdup(e->d_name);
  }
  qsort(names, n, sizeof *names, by_name);
  for (size_t i = 0; i < n && rc == 0; i++) {
    char full[PATH_MAX];
    if (snprintf(full, sizeof full, "%s/%s", path, names[i]) >= (int)sizeof full) { rc = -1; break; }
    if ((out_abs && !strcmp(full, out_abs)) || (out_dir && !strcmp(full, out_dir))) continue;
    struct stat st;
    if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) { rc = -1; break; }
    char meta[64];
    snprintf(meta, sizeof meta, "%o %lld", (unsigned)st.st_mode, S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size);
    sha_str(s, full);
    sha_str(s, meta);
    if (S_ISREG(st.st_mode)) rc = hash_file(s, dfd, names[i]);
    else if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t k = readlinkat(dfd, names[i], target, sizeof target - 1);
      if (k < 0) rc = -1;
      else target[k] = 0, sha_str(s, target);
    } else if (S_ISDIR(st.st_mode)) rc = hash_tree(s, full, depth + 1);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  closedir(d);
  return rc;
}

static const char *ENV_KEYS[] = {"PATH", "CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH", "LIBRARY_PATH", "GCC_EXEC_PREFIX", "COMPILER_PATH",
                                 "SOURCE_DATE_EPOCH", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "GCC_COMPARE_DEBUG", "LD_PRELOAD", "LD_LIBRARY_PATH", "DEPENDENCIES_OUTPUT",
                                 "SUNPRO_DEPENDENCIES", NULL};

/* Arguments the front leaves to the compiler alone: they read stdin or files the key does not cover, write files beside -o, or print instead of compiling. */
static int uncacheable(const char *a) {
  static const char *exact[] = {"-", "-E", "-v", "-###", "--help", "--version", NULL};
  static const char *prefix[] = {"@", "-M", "-save-temps", "-fplugin", "-specs", "-wrapper", "-B", "-fprofile", "-print", "-dump", "-fdump", "-ftime-report", "-fcallgraph-info", "-fstack-usage", "--param=", NULL};
  for (int i = 0; exact[i]; i++)
    if (!strcmp(a, exact[i])) return 1;
  for (int i = 0; prefix[i]; i++)
    if (!strncmp(a, prefix[i], strlen(prefix[i]))) return 1;
  return 0;
}

/*
 * The real compiler: the first on PATH that is not this program. `rest` gets PATH without
 * this program's folders: the compiler finds its own parts through its name on PATH.
 */
static int find_real(const char *name, char *out, size_t len, char *rest, size_t restlen) {
  char self[PATH_MAX];
  if (!realpath("/proc/self/exe", self)) return -1;
  const char *path = getenv("PATH");
  char buf[8192];
  snprintf(buf, sizeof buf, "%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
  int found = -1;
  rest[0] = 0;
  for (char *save = NULL, *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    char cand[PATH_MAX], real[PATH_MAX];
    if (snprintf(cand, sizeof cand, "%s/%s", dir, name) >= (int)sizeof cand) continue;
    int usable = access(cand, X_OK) == 0 && realpath(cand, real);
    if (usable && !strcmp(real, self)) continue;
    size_t used = strlen(rest);
    snprintf(rest + used, restlen - used, "%s%s", used ? ":" : "", dir);
    if (usable && found != 0) snprintf(out, len, "%s", cand), found = 0;
  }
  return found;
}

static int copy_fd(int from, int to, long max) {
  char buf[65536];
  ssize_t n;
  long total = 0;
  while ((n = read(from, buf, sizeof buf)) > 0) {
    total += n;
    if (max >= 0 && total > max) return -1;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(to, buf + off, (size_t)(n - off));
      if (w < 0) return -1;
      off += w;
    }
  }
  return n == 0 ? 0 : -1;
}

/* A hit: the kept output at -o (made anew, as the linker does), the kept stderr replayed. */
static int serve(const char *cache, const char *key, const char *out) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s.out", cache, key);
  int in = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) return -1;
  struct stat st;
  if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) return close(in), -1;
  if (unlink(out) != 0 && errno != ENOENT) return close(in), -1;
  int o = open(out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (st.st_mode & 0111) ? 0777 : 0666);
  if (o < 0) return close(in), -1;
  int rc = copy_fd(in, o, -1);
  close(in);
  if (close(o) != 0 || rc != 0) return unlink(out), -1;
  snprintf(path, sizeof path, "%s/%s.err", cache, key);
  int err = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (err >= 0) copy_fd(err, 2, -1), close(err);
  return 0;
}

/* Leaves a successful call's output and stderr for the agent (NANOGRID_BUILD_OUT). */
static void keep(const char *dir, const char *key, const char *out, const char *err, size_t errlen, long max) {
  struct stat st;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return;
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return;
  int in = open(out, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) return;
  if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > max) return (void)close(in);
  char tmp[PATH_MAX], final[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, key);
  int o = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, (st.st_mode & 0111) ? 0755 : 0644);
  int ok = o >= 0 && copy_fd(in, o, max) == 0;
  close(in);
  if (o >= 0 && close(o) != 0) ok = 0;
  if (errlen > 0 && ok) {
    snprintf(final, sizeof final, "%s/%s.err", dir, key);
    int e = open(final, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    ok = e >= 0 && write(e, err, errlen) == (ssize_t)errlen;
    if (e >= 0) close(e);
  }
  snprintf(final, sizeof final, "%s/%s.out", dir, key);
  if (!ok || rename(tmp, final) != 0) unlink(tmp);
}

int main(int argc, char **argv) {
  const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  char real[PATH_MAX], rest[8192];
  if (find_real(name, real, sizeof real, rest, sizeof rest) != 0) {
    fprintf(stderr, "%s: no compiler of that name on PATH\n", name);
    return 127;
  }
  argv[0] = (char *)name;
  const char *cache = getenv("NANOGRID_BUILD_CACHE"), *outdir = getenv("NANOGRID_BUILD_OUT"), *roots = getenv("NANOGRID_BUILD_ROOTS");
  const char *maxs = getenv("NANOGRID_BUILD_MAX_BYTES");
  long max = maxs ? atol(maxs) : 64L << 20;
  const char *out = NULL;
  int cacheable = cache && outdir && roots;
  for (int i = 1; i < argc && cacheable; i++) {
    if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if (!strncmp(argv[i], "-o", 2) && argv[i][2]) out = argv[i] + 2;
    else if (uncacheable(argv[i])) cacheable = 0;
  }
  char cwd[PATH_MAX], key[65], abs_out[PATH_MAX];
  if (!out || !getcwd(cwd, sizeof cwd)) cacheable = 0;
  if (cacheable) {
    int w = out[0] == '/' ? snprintf(abs_out, sizeof abs_out, "%s", out) : snprintf(abs_out, sizeof abs_out, "%.2000s/%.2000s", cwd, out);
    if (w < 0 || w >= (int)sizeof abs_out) cacheable = 0;
    out_abs = abs_out, out_dir = outdir;
    sha256 s;
    sha_init(&s);
    sha_str(&s, FRONT_VERSION);
    sha_str(&s, real);
    sha_str(&s, cwd);
    for (int i = 0; i < argc; i++) sha_str(&s, argv[i]);
    for (int i = 0; ENV_KEYS[i]; i++) {
      const char *v = getenv(ENV_KEYS[i]);
      sha_str(&s, ENV_KEYS[i]);
      sha_str(&s, v ? v : "\x01unset");
    }
    char rbuf[4096];
    snprintf(rbuf, sizeof rbuf, "%s", roots);
    for (char *save = NULL, *r = strtok_r(rbuf, ":", &save); r && cacheable; r = strtok_r(NULL, ":", &save)) {
      sha_str(&s, r);
      if (hash_tree(&s, r, 0) != 0) cacheable = 0;
    }
    sha_hex(&s, key);
  }
  if (cacheable && serve(cache, key, out) == 0) {
    /* Counted by the agent (its /status): an empty file named for the key. */
    char hit[PATH_MAX];
    struct stat st;
    if ((mkdir(outdir, 0700) == 0 || errno == EEXIST) && lstat(outdir, &st) == 0 && S_ISDIR(st.st_mode) &&
        snprintf(hit, sizeof hit, "%s/%s.hit", outdir, key) < (int)sizeof hit) {
      int h = open(hit, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (h >= 0) close(h);
    }
    return 0;
  }
  setenv("PATH", rest, 1);
  if (!cacheable) {
    execv(real, argv);
    perror(real);
    return 127;
  }

  /* A miss: the compiler runs, its stderr passed through and kept for the replay. */
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return execv(real, argv), 127;
  pid_t pid = fork();
  if (pid < 0) return execv(real, argv), 127;
  if (pid == 0) {
    dup2(pipefd[1], 2);
    execv(real, argv);
    perror(real);
    _exit(127);
  }
  close(pipefd[1]);
  static char err[MAX_STDERR];
  size_t errlen = 0;
  int whole = 1;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n < 0) continue;
    if (write(2, buf, (size_t)n) < 0) { /* the run's stderr is gone: nothing to replay to */ }
    if (errlen + (size_t)n <= sizeof err) memcpy(err + errlen, buf, (size_t)n), errlen += (size_t)n;
    else whole = 0;
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && whole) keep(outdir, key, out, err, errlen, max);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
