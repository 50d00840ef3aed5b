import { open } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InvocationError } from '../core/reasons.js';
import type { StagedCode } from '../container/scratch.js';

/** The manifest's name at the top of a function's zip. */
export const MANIFEST_NAME = 'nanogrid.json';
const MANIFEST_MAX_BYTES = 64 * 1024;

/**
 * `module.function`: python's module path and attribute, or node's file (module.js, .mjs or
 * .cjs) and export. No slash: a handler names code inside the workspace only.
 */
export const HANDLER_SPEC = /^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*\.[A-Za-z_$][\w$]*$/;

const manifestSchema = z
  .object({
    handler: z.string().max(256).regex(HANDLER_SPEC, 'module.function (letters, digits, _ and -, dots between; no slash)').optional(),
  })
  .strict();

/** What a function's nanogrid.json says: today, whether it runs in handler mode. */
export interface Manifest {
  handler?: string | undefined;
}

const parsed = new WeakMap<StagedCode, Manifest | null>();

/**
 * The code version's manifest, or null when its zip has none (a plain function). Read once
 * per version. The zip is its sender's: a manifest that is too large, not JSON, or has a
 * field this worker does not know fails the invocation (MANIFEST_INVALID), naming why.
 */
export async function manifestOf(code: StagedCode): Promise<Manifest | null> {
  if (parsed.has(code)) return parsed.get(code)!;
  const m = code.names.includes(MANIFEST_NAME) ? parseManifest(await readBounded(join(code.dir, MANIFEST_NAME))) : null;
  parsed.set(code, m);
  return m;
}

export function parseManifest(text: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalid(`not JSON (${(err as Error).message})`);
  }
  const r = manifestSchema.safeParse(json);
  if (!r.success) throw invalid(r.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; '));
  return r.data;
}

async function readBounded(path: string): Promise<string> {
  // The extractor refuses links; O_NOFOLLOW still keeps a folder or link from being read as one.
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
    throw invalid(`cannot be read (${err.code ?? err.message})`);
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw invalid('is not a regular file');
    if (st.size > MANIFEST_MAX_BYTES) throw invalid(`is ${st.size} bytes; the most is ${MANIFEST_MAX_BYTES}`);
    return (await fh.readFile()).toString('utf8');
  } finally {
    await fh.close();
  }
}

function invalid(why: string): InvocationError {
  return new InvocationError('MANIFEST_INVALID', 'permanent', `${MANIFEST_NAME} ${why}`);
}
