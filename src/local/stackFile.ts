import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LocalStack } from './stack.js';

/** Where a running embedded stack answers: what `nanogrid --local` needs to reach it. */
export interface StackAddress {
  endpoint: string;
  region: string;
  queueUrl: string;
  bucket: string;
  redisUrl: string;
}

/**
 * Written by `npm run local` once its stack listens, removed when it stops (0600: it is
 * this machine's root's). The stack's Redis port is picked free at each start, so an
 * operator cannot know it in advance.
 */
export async function writeStackFile(path: string, s: LocalStack): Promise<void> {
  const address: StackAddress = { endpoint: s.endpoint, region: s.region, queueUrl: s.queueUrl, bucket: s.bucket, redisUrl: s.redisUrl };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Whole or not at all: a CLI waiting for it must never read half of it.
  const part = `${path}.${process.pid}.part`;
  await writeFile(part, `${JSON.stringify(address)}\n`, { mode: 0o600 });
  await rename(part, path);
}

export async function readStackFile(path: string): Promise<StackAddress> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EACCES') throw new Error(`${path} cannot be read (EACCES): npm run local keeps it for root; run the CLI as root`);
    throw new Error(`no embedded stack is running (${path} not found): start one with npm run local`);
  }
  let a: Partial<StackAddress>;
  try {
    a = JSON.parse(raw) as Partial<StackAddress>;
  } catch {
    throw new Error(`${path} is not JSON; restart npm run local`);
  }
  for (const k of ['endpoint', 'region', 'queueUrl', 'bucket', 'redisUrl'] as const) {
    if (typeof a[k] !== 'string') throw new Error(`${path}: ${k} missing; restart npm run local`);
  }
  return a as StackAddress;
}

/**
 * The stack's address, waiting up to `waitMs` for one that is still starting (the file
 * appears once its agent serves), saying so every 10 s; then the same error as reading it.
 */
export async function waitForStackFile(path: string, waitMs: number, say: (line: string) => void): Promise<StackAddress> {
  const deadline = Date.now() + waitMs;
  let next = Date.now();
  for (;;) {
    try {
      return await readStackFile(path);
    } catch (err) {
      if (Date.now() >= deadline || !(err as Error).message.startsWith('no embedded stack')) throw err;
    }
    if (Date.now() >= next) {
      say(`waiting for the embedded stack (${path} not there yet: npm run local writes it once its agent serves; up to ${Math.round(waitMs / 1000)} s)`);
      next = Date.now() + 10_000;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Removes the file if it still names this stack (another `npm run local` may have started since). */
export async function removeStackFile(path: string, s: LocalStack): Promise<void> {
  const now = await readStackFile(path).catch(() => undefined);
  if (now && now.redisUrl === s.redisUrl && now.endpoint === s.endpoint) await rm(path, { force: true });
}
