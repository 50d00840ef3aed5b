// Floors and baselines measured straight on the Docker engine, beside the agent, in the
// same run: what the hardware and engine cost at least, and what the original Java
// worker's stage 3 (cold per request) and stage 4 (paused pool) paths cost.
import type Docker from 'dockerode';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { ZipFiles } from '../src/local/client.js';
import { LABEL_AGENT } from '../src/core/sandbox.js';
import { unpauseContainer } from '../src/pool/dockerContainer.js';

export const DIRECT_AGENT = 'bench-direct';

const labels = { [LABEL_AGENT]: DIRECT_AGENT };

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

async function idleContainer(docker: Docker, image: string, codeDir?: string): Promise<Docker.Container> {
  const c = await docker.createContainer({
    Image: image,
    Cmd: ['sleep', 'infinity'],
    Labels: labels,
    HostConfig: { NetworkMode: 'none', Binds: codeDir ? [`${codeDir}:/code:ro`] : [] },
  });
  await c.start();
  return c;
}

/** Engine floors: exec /bin/true, create+start+remove, pause+unpause. */
export async function measureFloors(o: Omit<DirectOptions, 'codeDir' | 'command'>): Promise<Record<string, number[]>> {
  const { docker, image, n } = o;
  const out: Record<string, number[]> = { 'floor: exec /bin/true': [], 'floor: create+start+remove': [], 'floor: pause+unpause': [] };
  const c = await idleContainer(docker, image);
  try {
    await execOnce(docker, c, ['/bin/true']);
    for (let i = 0; i < n; i++) out['floor: exec /bin/true']!.push(await timed(() => execOnce(docker, c, ['/bin/true'])));
    o.progress(`floors: exec /bin/true x${n}`);
    for (let i = 0; i < n; i++) {
      out['floor: pause+unpause']!.push(
        await timed(async () => {
          await c.pause();
          await unpauseContainer(c);
        }),
      );
    }
    o.progress(`floors: pause+unpause x${n}`);
  } finally {
    await c.remove({ force: true });
  }
  for (let i = 0; i < n; i++) {
    out['floor: create+start+remove']!.push(
      await timed(async () => {
        const x = await docker.createContainer({ Image: image, Cmd: ['sleep', 'infinity'], Labels: labels, HostConfig: { NetworkMode: 'none' } });
        await x.start();
        await x.remove({ force: true });
      }),
    );
  }
  o.progress(`floors: create+start+remove x${n}`);
  return out;
}

/** The function's own run time, timed inside the container (no exec or engine overhead). */
export async function measureOwnRunTime(o: DirectOptions): Promise<number[]> {
  const c = await idleContainer(o.docker, o.image, o.codeDir);
  const samples: number[] = [];
  try {
    const script = `s=$(date +%s%N); ${o.command.join(' ')} >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`;
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

/** The original stage 4: a paused container per request: unpause, exec, collect, pause. */
export async function measureStage4(o: DirectOptions): Promise<number[]> {
  const c = await idleContainer(o.docker, o.image, o.codeDir);
  const samples: number[] = [];
  try {
    await execOnce(o.docker, c, ['/bin/sh', '-c', 'mkdir -p /tmp/w && cp -r /code/. /tmp/w/']);
    await c.pause();
    for (let i = 0; i < o.n; i++) {
      samples.push(
        await timed(async () => {
          await unpauseContainer(c);
          await execOnce(o.docker, c, o.command, '/tmp/w');
          await c.pause();
        }),
      );
    }
  } finally {
    await c.remove({ force: true });
  }
  return samples;
}
