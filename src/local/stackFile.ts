import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
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
  await writeFile(path, `${JSON.stringify(address)}\n`, { mode: 0o600 });
}

export async function readStackFile(path: string): Promise<StackAddress> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch {
    throw new Error(`no embedded stack is running (${path} not found): start one with npm run local`);
  }
  const a = JSON.parse(raw) as Partial<StackAddress>;
  for (const k of ['endpoint', 'region', 'queueUrl', 'bucket', 'redisUrl'] as const) {
    if (typeof a[k] !== 'string') throw new Error(`${path}: ${k} missing; restart npm run local`);
  }
  return a as StackAddress;
}

/** Removes the file if it still names this stack (another `npm run local` may have started since). */
export async function removeStackFile(path: string, s: LocalStack): Promise<void> {
  const now = await readStackFile(path).catch(() => undefined);
  if (now && now.redisUrl === s.redisUrl && now.endpoint === s.endpoint) await rm(path, { force: true });
}
