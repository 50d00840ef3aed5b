// Floors and baselines measured straight on the Docker engine, beside the agent, in the
// same run: what the hardware and engine cost at least, and what the original Java
// worker's stage 3 (cold per request) and stage 4 (paused pool) paths cost.
import type Docker from 'dockerode';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { ZipFiles } from '../src/local/client.js';
import { LABEL_AGENT, WORKDIR } from '../src/core/sandbox.js';
import { soloContainerSpec } from '../src/local/soloContainer.js';
import { DockerContainer, unpauseContainer } from '../src/container/dockerContainer.js';
import { locateFreezer } from '../src/container/freezer.js';

export const DIRECT_AGENT = 'bench-direct';

const labels = { [LABEL_AGENT]: DIRECT_AGENT };

/**
 * dockerd's pause, retried: runc gives up a freeze that does not settle ("unable to
 * freeze", seen about once in a few thousand pauses on this engine), and a worker on the
 * original path would pause again.
 */
export async function pauseContainer(c: Docker.Container): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await c.pause();
      return;
    } catch (err) {
      if (attempt >= 4 || !/unable to freeze/.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

/** Writes a function's files into a folder (what the agent's unzip would produce). */
export async function writeFunction(dir: string, files: ZipFiles): Promise<void> {
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o777);
  for (const [name, f] of Object.entries(files)) {
    const content = typeof f === 'string' ? f : f.content;
    const mode = typeof f === 'string' ? 0o644 : (f.mode ?? 0o644) & 0o777;
    await writeFile(join(dir, name), content, { mode });
  }
}

/** create, start (hijacked), wait for the stream to end, inspect: a real exec's minimum. */
export async function execOnce(docker: Docker, c: Docker.Container, cmd: string[], workdir?: string): Promise<{ exitCode: number; stdout: string }> {
  const exec = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, WorkingDir: workdir });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  out.on('data', (d: Buffer) => (stdout += d.toString()));
  err.resume();
  docker.modem.demuxStream(stream, out, err);
  await new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
  });
  const info = await exec.inspect();
  return { exitCode: info.ExitCode ?? -1, stdout };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface DirectOptions {
  docker: Docker;
  image: string;
  codeDir: string;
  command: string[];
  n: number;
  progress: (msg: string) => void;
}

async function idleContainer(docker: Docker, image: string, codeDir?: string, runnerDir?: string): Promise<Docker.Container> {
  const c = await docker.createContainer({
    Image: image,
    Cmd: ['sleep', 'infinity'],
    Labels: labels,
    HostConfig: { NetworkMode: 'none', Binds: [...(codeDir ? [`${codeDir}:/code:ro`] : []), ...(runnerDir ? [`${runnerDir}:/nanogrid:ro`] : [])] },
  });
  await c.start();
  return c;
}

/** Engine floors: exec /bin/true, create+start, dockerd pause+unpause against the cgroup freezer. */
export async function measureFloors(o: Omit<DirectOptions, 'codeDir' | 'command'>): Promise<Record<string, number[]>> {
  const { docker, image, n } = o;
  const out: Record<string, number[]> = {
    'floor: exec /bin/true': [],
    'floor: create+start': [],
    'floor: dockerd pause+unpause': [],
    'floor: cgroup freeze+thaw': [],
  };
  const c = await idleContainer(docker, image);
  try {
    await execOnce(docker, c, ['/bin/true']);
    for (let i = 0; i < n; i++) out['floor: exec /bin/true']!.push(await timed(() => execOnce(docker, c, ['/bin/true'])));
    o.progress(`floors: exec /bin/true x${n}`);
    // Side by side on the same container: what OpenWhisk's choice of runc over dockerd is about.
    const freezer = await locateFreezer((await c.inspect()).State.Pid);
    for (let i = 0; i < n; i++) {
      out['floor: dockerd pause+unpause']!.push(
        await timed(async () => {
          await pauseContainer(c);
          await unpauseContainer(c);
        }),
      );
      if (freezer) {
        out['floor: cgroup freeze+thaw']!.push(
          await timed(async () => {
            await freezer.freeze();
            await freezer.thaw();
          }),
        );
      }
    }
    o.progress(`floors: dockerd pause+unpause and cgroup freeze+thaw x${n}`);
  } finally {
    await c.remove({ force: true });
  }
  for (let i = 0; i < n; i++) {
    let x: Docker.Container | undefined;
    out['floor: create+start']!.push(
      await timed(async () => {
        x = await docker.createContainer({ Image: image, Cmd: ['sleep', 'infinity'], Labels: labels, HostConfig: { NetworkMode: 'none' } });
        await x.start();
      }),
    );
    await x?.remove({ force: true });
  }
  o.progress(`floors: create+start x${n}`);
  return out;
}

/**
 * The resident runner's floors: one round trip on its socket (ping), and a trivial python
 * run forked by the zygote and started by the runner itself, timed from the agent's side.
 */
export async function measureResident(o: DirectOptions & { workRoot: string; runnerDir: string }): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = { 'floor: resident round trip (ping)': [], 'python: resident run, zygote': [], 'python: resident run, exec': [] };
  const c = new DockerContainer(
    o.docker,
    soloContainerSpec(join(o.workRoot, 'resident'), { image: o.image, name: `ng-bench-resident-${process.pid}`, labels, zygote: ['python3', '/nanogrid/zygote.py'], memoryMb: 256, runnerDir: o.runnerDir }),
  );
  try {
    await c.create();
    const ws = c.workspaceHostPath;
    await writeFunction(ws, { 'main.py': 'print("hello from python")\n' });
    const runner = c.runner!;
    for (let i = 0; i < o.n * 3; i++) out['floor: resident round trip (ping)']!.push(await runner.ping(1000));
    for (const mode of ['zygote', 'exec'] as const) {
      for (let i = 0; i < o.n + 1; i++) {
        const ms = await timed(() =>
          runner.run({ mode, argv: o.command, cwd: WORKDIR, uid: c.uid!, gid: c.uid!, env: ['PYTHONUNBUFFERED=1'], timeoutMs: 10_000, outputLimitBytes: 1 << 20 }, 5000),
        );
        if (i > 0) out[`python: resident run, ${mode}`]!.push(ms);
      }
    }
    o.progress(`resident runner: ping x${o.n * 3}, zygote and exec runs x${o.n}`);
  } finally {
    await c.destroy();
  }
  return out;
}

/**
 * The function's own run time, timed inside the container (no exec or engine overhead).
 * With `frontDir` (dist/runner), compiler calls go through the build cache's front, as in
 * the agent's C++ containers, and every timed run after the first is served by its entry.
 */
export async function measureOwnRunTime(o: DirectOptions & { frontDir?: string }): Promise<number[]> {
  const c = await idleContainer(o.docker, o.image, o.codeDir, o.frontDir);
  const samples: number[] = [];
  try {
    const front = o.frontDir
      ? 'export PATH=/nanogrid/bin:$PATH NANOGRID_BUILD_CACHE=/tmp/cc NANOGRID_BUILD_OUT=/tmp/cc NANOGRID_BUILD_ROOTS=/tmp/w NANOGRID_BUILD_MAX_BYTES=268435456; mkdir -p /tmp/cc; '
      : '';
    const script = `${front}s=$(date +%s%N); ${o.command.join(' ')} >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`;
    // The cpp function compiles into its folder: give it a writable copy.
    await execOnce(o.docker, c, ['/bin/sh', '-c', 'mkdir -p /tmp/w && cp -r /code/. /tmp/w/']);
    for (let i = 0; i < o.n + 1; i++) {
      const r = await execOnce(o.docker, c, ['/bin/sh', '-c', script], '/tmp/w');
      if (i > 0) samples.push(Number(r.stdout.trim()) / 1000);
    }
  } finally {
    await c.remove({ force: true });
  }
  return samples;
}

/** The original stage 3: create, start, wait, logs, remove, per invocation. */
export async function measureStage3(o: DirectOptions): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < o.n; i++) {
    samples.push(
      await timed(async () => {
        const c = await o.docker.createContainer({
          Image: o.image,
          Cmd: ['/bin/sh', '-c', `cp -r /code/. /tmp/ && cd /tmp && ${o.command.join(' ')}`],
          Labels: labels,
          HostConfig: { NetworkMode: 'none', Binds: [`${o.codeDir}:/code:ro`] },
        });
        await c.start();
        await c.wait();
        await c.logs({ stdout: true, stderr: true });
        await c.remove({ force: true });
      }),
    );
  }
  return samples;
}

/**
 * The original stage 4 run by a pool of `size` paused containers side by side, `count`
 * invocations in all: its throughput on this engine.
 */
export async function measureStage4Pool(o: DirectOptions & { size: number; count: number }): Promise<{ perSecond: number; seconds: number }> {
  const pool = await Promise.all(Array.from({ length: o.size }, () => idleContainer(o.docker, o.image, o.codeDir)));
  try {
    await Promise.all(
      pool.map(async (c) => {
        await execOnce(o.docker, c, ['/bin/sh', '-c', 'mkdir -p /tmp/w && cp -r /code/. /tmp/w/']);
        await pauseContainer(c);
      }),
    );
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      pool.map(async (c) => {
        while (next < o.count) {
          next++;
          await unpauseContainer(c);
          try {
            await execOnce(o.docker, c, o.command, '/tmp/w');
          } catch (err) {
            // dockerd 20.10 can report an unpause done and still refuse the exec as paused
            // (the unpause-after-pause race): unpause again and retry, as a worker would.
            if (!/is paused/.test(String(err))) throw err;
            await unpauseContainer(c);
            await execOnce(o.docker, c, o.command, '/tmp/w');
          }
          await pauseContainer(c);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, perSecond: o.count / seconds };
  } finally {
    await Promise.all(pool.map((c) => c.remove({ force: true }).catch(() => undefined)));
  }
}

/** The original stage 4: a paused container per request: unpause, exec, collect, pause. */
export async function measureStage4(o: DirectOptions): Promise<number[]> {
  const c = await idleContainer(o.docker, o.image, o.codeDir);
  const samples: number[] = [];
  try {
    await execOnce(o.docker, c, ['/bin/sh', '-c', 'mkdir -p /tmp/w && cp -r /code/. /tmp/w/']);
    await pauseContainer(c);
    for (let i = 0; i < o.n; i++) {
      samples.push(
        await timed(async () => {
          await unpauseContainer(c);
          await execOnce(o.docker, c, o.command, '/tmp/w');
          await pauseContainer(c);
        }),
      );
    }
  } finally {
    await c.remove({ force: true });
  }
  return samples;
}
