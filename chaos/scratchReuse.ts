import { sleep } from '../src/core/timeout.js';
import type { Scenario } from './world.js';

/**
 * Scratch file systems are reused across containers (src/container/scratchStock.ts): each
 * function here first looks for anything a container before it left, then plants every
 * kind of trace it can (files, hidden ones, deep folders, a FIFO, a socket, a link, an
 * extended attribute, a big file, a file held open by a process that outlives the run,
 * and tries on the folders themselves: an attribute, a mode, a hard link to the code).
 * One container at a time, each function new, so every container after the first few
 * gets a file system another function used.
 */
const TRACER = `
import json, os, socket, subprocess, sys
W = os.getcwd()
tag = os.environ["NANOGRID_REQUEST_ID"][-12:]
def walk(d):
    out = []
    for root, dirs, files in os.walk(d):
        out += [os.path.join(root, n) for n in dirs + files]
    return out
seen = [p for p in walk(W) if p != W + "/main.py" and not p.startswith(W + "/.nanogrid")] + walk("/tmp") + walk("/dev/shm")
dirs = {}
for d in (W, "/tmp", "/dev/shm"):
    st = os.lstat(d)
    dirs[d] = [st.st_uid, st.st_gid, oct(st.st_mode), sorted(os.listxattr(d))]
v = os.statvfs("/tmp")
refused = {}
def attempt(name, fn):
    try:
        fn()
        refused[name] = False
    except OSError:
        refused[name] = True
for d in (W, "/tmp", "/dev/shm"):
    os.makedirs(d + "/trace-" + tag + "/a/b/c")
    open(d + "/trace-" + tag + "/a/b/c/file", "w").write("secret " + tag)
    open(d + "/.hidden-" + tag, "w").write("x")
    os.mkfifo(d + "/fifo-" + tag)
    socket.socket(socket.AF_UNIX).bind(d + "/sock-" + tag)
    os.symlink("/etc/passwd", d + "/link-" + tag)
    open(d + "/xattr-" + tag, "w").write("y")
    attempt("xattr on a file of its own " + d, lambda: os.setxattr(d + "/xattr-" + tag, "user.trace", tag.encode()))
    attempt("xattr on " + d, lambda: os.setxattr(d, "user.trace", b"x"))
    attempt("chmod " + d, lambda: os.chmod(d, 0o777))
    attempt("hard link to the code in " + d, lambda: os.link(W + "/main.py", d + "/hard-" + tag))
with open("/tmp/big-" + tag, "wb") as f:
    f.write(os.urandom(4 << 20))
# A file held open, unlinked, by a process that outlives the run (the runner kills it).
subprocess.Popen(["sh", "-c", "exec 3>/tmp/held; rm /tmp/held; exec sleep 30"], start_new_session=True)
print(json.dumps({"seen": seen, "dirs": dirs, "fs": [v.f_ffree, v.f_bfree], "refused": refused}))
`;

const ROUNDS = 8;

export const SCRATCH_SCENARIOS: Scenario[] = [
  {
    name: 'a reused scratch file system shows nothing of before',
    async run(w) {
      const a = await w.startAgent('chaos-scratch', { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1', NANOGRID_SCRATCH_SPARE: '1' });
      const port = await a.started();
      const ids: string[] = [];
      const problems: string[] = [];
      const reports: Array<{ seen: string[]; dirs: Record<string, unknown>; fs: number[]; refused: Record<string, boolean> }> = [];
      for (let i = 0; i < ROUNDS; i++) {
        const fn = `tracer-${i}`;
        await w.client.uploadZip(`${fn}/v1.zip`, { 'main.py': TRACER });
        const m = w.message(fn);
        ids.push(m.requestId);
        await w.client.send(m);
        const r = await w.client.waitForResult(m.requestId, 60_000);
        try {
          reports.push(JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as (typeof reports)[number]);
        } catch {
          problems.push(`round ${i}: no report (${r.status}/${r.reason} ${r.stderr.slice(0, 200)})`);
        }
        // The last container's removal and its file system's recycling, before the next cold start.
        await sleep(300);
      }
      for (const [i, rep] of reports.entries()) {
        if (rep.seen.length > 0) problems.push(`round ${i} saw ${rep.seen.length} traces: ${rep.seen.slice(0, 4).join(', ')}`);
        for (const [name, ok] of Object.entries(rep.refused)) if (!ok && !name.startsWith('xattr on a file of its own')) problems.push(`round ${i}: allowed ${name}`);
        if (JSON.stringify(rep.dirs) !== JSON.stringify(reports[0]!.dirs)) problems.push(`round ${i}: its folders differ from the first round's: ${JSON.stringify(rep.dirs)}`);
        if (rep.fs.join('/') !== reports[0]!.fs.join('/')) problems.push(`round ${i}: free inodes/blocks ${rep.fs.join('/')} differ from a new file system's ${reports[0]!.fs.join('/')}`);
      }
      if (reports.some((r) => r.refused[`xattr on a file of its own /tmp`] !== false)) problems.push('the tracer could not set an attribute on its own file: that trace was never planted');
      const scratch = ((await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { scratch: { made: number; recycled: number; discarded: number } }).scratch;
      if (scratch.recycled < ROUNDS / 2) problems.push(`only ${scratch.recycled} file systems were reused over ${ROUNDS} containers: the row proves little`);
      const dirty = a.lines.filter((l) => l.msg === 'a scratch file system given back was not as new; destroyed');
      return w.row(this.name, ids, {
        timeoutMs: 30_000,
        extra: problems,
        note: `${ROUNDS} containers in turn: ${scratch.made} file systems made, ${scratch.recycled} recycled, ${scratch.discarded} discarded (${dirty.length} not as new); no trace seen`,
      });
    },
  },
];
