import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { buildZip, type ZipFiles } from '../local/client.js';
import { MANIFEST_NAME } from '../run/manifest.js';
import { UsageError } from './usage.js';

/**
 * A function's code as a zip: a .zip file as it is, or a folder zipped (regular files
 * only, modes kept, names sorted, timestamps fixed: the same folder gives the same bytes,
 * so the same S3 key and code version).
 */
export async function zipOf(path: string): Promise<{ zip: Buffer; names: string[] }> {
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`${path}: ${err.code === 'ENOENT' ? 'no such file or folder' : err.message}`);
  });
  if (st.isFile()) return { zip: await readFile(path), names: [] };
  const files: ZipFiles = {};
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile()) files[relative(path, full).split(sep).join('/')] = { content: await readFile(full), mode: 0o100000 | ((await stat(full)).mode & 0o777) };
    }
  };
  await walk(path);
  const names = Object.keys(files);
  if (names.length === 0) throw new UsageError(`${path} has no files`);
  return { zip: await buildZip(files), names };
}

/**
 * What a folder's files say its runtime is, when they do not fit `runtime` (a runtime's
 * name, its aliases resolved): a C++ folder (run.sh, *.cpp) or a node one (main.js) sent
 * as python fails on every worker with "can't open main.py". Null when they fit, or say
 * nothing.
 */
export function runtimeHint(names: readonly string[], runtime: string): string | null {
  if (names.length === 0 || names.includes(MANIFEST_NAME)) return null;
  const top = new Set(names.filter((n) => !n.includes('/')));
  if (runtime === 'python' && !top.has('main.py')) {
    if (top.has('run.sh') || names.some((n) => /\.(cpp|cc|cxx|c)$/.test(n))) return 'the folder holds C++ (run.sh or a .cpp file) and no main.py: add --runtime cpp';
    if (top.has('main.js')) return 'the folder holds main.js and no main.py: add --runtime node';
    return 'a python function needs main.py at the top of its folder (or a nanogrid.json naming a handler)';
  }
  if (runtime === 'cpp' && !top.has('run.sh')) return 'a cpp function needs run.sh at the top of its folder (it builds and runs the program)';
  if (runtime === 'node' && !top.has('main.js')) return 'a node function needs main.js at the top of its folder (or a nanogrid.json naming a handler)';
  return null;
}
