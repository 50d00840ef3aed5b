import { chmod, link, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CodeVersion } from '../run/codeCache.js';

/**
 * A container's workspace: the function's code as hard links to the cached version
 * (root-owned, read-only to the function), in a folder the function may add files to but
 * whose code it cannot remove (sticky, like /tmp). Between runs of the same version only
 * what a run added is removed; the code stays in place.
 */
export async function stageWorkspace(workspace: string, code: CodeVersion): Promise<void> {
  await rm(workspace, { recursive: true, force: true });
  await mkdir(workspace);
  await chmod(workspace, 0o1777);
  await linkTree(code.dir, workspace);
}

/** Removes every top-level entry that is not part of the code. */
export async function resetWorkspace(workspace: string, codeNames: readonly string[]): Promise<void> {
  const keep = new Set(codeNames);
  let names: string[];
  try {
    names = await readdir(workspace);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => !keep.has(n)).map((n) => rm(join(workspace, n), { recursive: true, force: true })));
}

async function linkTree(from: string, to: string): Promise<void> {
  for (const e of await readdir(from, { withFileTypes: true })) {
    const src = join(from, e.name);
    const dst = join(to, e.name);
    if (e.isDirectory()) {
      await mkdir(dst, { mode: 0o755 });
      await linkTree(src, dst);
    } else if (e.isFile()) {
      await link(src, dst);
    }
  }
}
