import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LOCAL_CREDENTIALS } from '../../src/local/agentConfig.js';
import type { Harness } from './harness.js';

// Hostile functions and their probes, shared by the sandbox tests on this machine (cgroup
// v1) and the VM suite's guest (cgroup v2, test/vm/guest/).

/** Every object a run stored under its prefix, with its bytes. */
/** A raw syscall from Python, answering 'ok' or the errno's name (needs ctypes and errno imported). */
export const PY_SYSCALL = `libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(*args):
    r = libc.syscall(*[ctypes.c_long(a) for a in args])
    return 'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
`;

export async function storedOutputs(h: Harness, prefix: string): Promise<Map<string, Buffer>> {
  const s3 = new S3Client({ region: h.stack.region, endpoint: h.stack.endpoint, forcePathStyle: true, credentials: LOCAL_CREDENTIALS });
  try {
    const out = new Map<string, Buffer>();
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'user-data', Prefix: prefix }));
    for (const o of listed.Contents ?? []) {
      const body = await s3.send(new GetObjectCommand({ Bucket: 'user-data', Key: o.Key! }));
      out.set(o.Key!, Buffer.from(await body.Body!.transformToByteArray()));
    }
    return out;
  } finally {
    s3.destroy();
  }
}

/** A root-only file and folder of the host, which no function may ever read. */
export async function hostSecret(t: { teardown(fn: () => unknown): void }): Promise<{ dir: string; file: string; text: string }> {
  const text = `HOST-SECRET-${randomBytes(8).toString('hex')}`;
  const dir = join('/root', `.nanogrid-test-secret-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'secret.txt');
  await writeFile(file, text, { mode: 0o600 });
  await writeFile(join(dir, 'x.txt'), text, { mode: 0o600 });
  return { dir, file, text };
}

// Takes every pid of its container with threads (each thread is a task of the pids
// cgroup), so that anything forking to clean up would be refused; meanwhile a process it
// forked first swaps output/d between a folder and a link to a host folder, and links
// point at a host file and at /proc/self/environ (the agent's own, seen from the host).
export const PID_EXHAUSTION = (secret: { dir: string; file: string }) => `
import os, threading, time
os.makedirs('output/d', exist_ok=True)
open('output/d/x.txt', 'w').write('mine')
os.symlink(${JSON.stringify(secret.file)}, 'output/secret')
os.symlink('/proc/self/environ', 'output/environ')
os.makedirs('output/deep', exist_ok=True)
os.symlink(${JSON.stringify(secret.dir)}, 'output/deep/dir')
if os.fork() == 0:
    while True:
        try:
            os.rename('output/d', 'output/d.real')
            os.symlink(${JSON.stringify(secret.dir)}, 'output/d')
            os.unlink('output/d')
            os.rename('output/d.real', 'output/d')
        except OSError:
            pass
threads = []
try:
    while True:
        th = threading.Thread(target=time.sleep, args=(3600,), daemon=True)
        th.start()
        threads.append(th)
except RuntimeError:
    pass
try:
    os.fork()
    print('fork worked')
except OSError as e:
    print('fork refused', e.errno)
print('threads', len(threads), flush=True)
time.sleep(3600)
`;

export const PROBE = `
import os
mine = {os.getpid(), os.getppid(), 1}
left = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in mine and os.stat('/proc/' + p).st_uid == os.getuid()]
print('left=%d output=%s' % (len(left), os.path.exists('output')))
`;

// Writes 1 MB blocks into the workspace, /tmp and /dev/shm in turn until a write fails,
// and reports how far it got and the errno.
export const FILL = `
import errno, os, sys
block = b'x' * (1 << 20)
written = 0
err = 'none'
paths = ['fill-work.bin', '/tmp/fill-tmp.bin', '/dev/shm/fill-shm.bin']
files = [open(p, 'wb') for p in paths]
try:
    for i in range(100000):
        f = files[i % 3]
        f.write(block)
        f.flush()
        written += 1
except OSError as e:
    err = errno.errorcode.get(e.errno, str(e.errno))
print('written_mb=%d' % written)
print('errno=' + err)
sys.exit(3 if err != 'none' else 0)
`;

// Reports what an earlier run could have left in the writable places.
export const LOOK = `
import os
print('work=' + ','.join(sorted(os.listdir('.'))))
print('tmp=' + ','.join(sorted(os.listdir('/tmp'))))
print('shm=' + ','.join(sorted(os.listdir('/dev/shm'))))
st = os.statvfs('/tmp')
print('free_mb=%d' % (st.f_bavail * st.f_frsize // (1 << 20)))
`;

export const parse = (stdout: string) => Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
