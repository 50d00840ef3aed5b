import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

/**
 * The layer order of src/ (docs/architecture.md), highest first: a module may import its
 * own layer and the layers below it, never one above. A port lives with the layer that
 * calls it when only a layer above implements it (run/ports.ts: sinks implement it), and
 * in core when a layer below does too (core/ports.ts: run implements intake's runner).
 */
export const LAYERS: readonly (readonly string[])[] = [
  // entry and wiring: the process, the agent, its configuration, the CLI, the local stack
  ['main.ts', 'agent.ts', 'parts.ts', 'startup.ts', 'config.ts', 'cli', 'local'],
  // what watches and reports on the agent: drain and notices, metrics, health, HTTP
  ['fleet', 'observe'],
  // where results and figures go: they implement the ports of intake and run
  ['sinks'],
  // SQS intake, routing, backpressure, disposition
  ['intake'],
  // one invocation on a lease: input, outputs, result making
  ['run'],
  // the code cache and fetch
  ['code'],
  // the pool actor, its containers' lifecycles, placement, leases
  ['pool'],
  // one container's plumbing: the engine's calls, runner, freezer, scratch, cgroups, limits;
  // and the build cache a container's compiler front reads (one container's side of it)
  ['container', 'build'],
  // the ground: names, data types, reasons, backoff, timeouts, threads, logging
  ['core', 'types'],
];

/** Imports against the order, each with its reason. None today. */
const EXCEPTIONS: Record<string, string> = {};

const src = fileURLToPath(new URL('../../src/', import.meta.url));

function layerOf(path: string): number {
  const top = relative(src, path).split('/')[0]!;
  const i = LAYERS.findIndex((l) => l.includes(top));
  if (i < 0) throw new Error(`${relative(src, path)} is in no layer: place it in LAYERS`);
  return i;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

t.test('every import of src/ runs down the layer order (or sideways within a layer)', async (t) => {
  const against: string[] = [];
  let imports = 0;
  for (const file of sources(src)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = normalize(join(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
      if (!target.startsWith(src)) continue;
      imports++;
      const edge = `${relative(src, file)} -> ${relative(src, target)}`;
      if (layerOf(target) < layerOf(file) && !EXCEPTIONS[edge]) against.push(edge);
    }
  }
  t.ok(imports > 100, `${imports} imports read`);
  t.same(against, [], 'no import runs up the order');
});

t.test('the layer test itself fails on an import against the order', async (t) => {
  t.ok(layerOf(join(src, 'container', 'x.ts')) > layerOf(join(src, 'pool', 'y.ts')), 'container is below pool');
  t.throws(() => layerOf(join(src, 'nowhere', 'z.ts')), /in no layer/, 'a new folder must be placed');
});

t.test('docs/architecture.md\'s source tree lists every file of src/, and no file that is gone', async (t) => {
  const doc = readFileSync(new URL('../../docs/architecture.md', import.meta.url), 'utf8');
  const tree = doc.slice(doc.indexOf('## Source tree'));
  const block = tree.slice(tree.indexOf('```') + 3, tree.indexOf('```', tree.indexOf('```') + 3));
  const listed = new Set<string>();
  let folder: string | undefined;
  for (const line of block.split('\n')) {
    const m = /^( *)(\S+)/.exec(line);
    if (!m || m[1]!.length === 0) continue;
    const name = m[2]!;
    if (m[1]!.length === 2) {
      folder = name.endsWith('/') ? name : undefined;
      if (!folder) listed.add(name);
    } else if (m[1]!.length === 4 && folder) listed.add(folder + name);
  }
  const files = sources(src).map((f) => relative(src, f)).filter((f) => f.endsWith('.ts'));
  t.same(files.filter((f) => !listed.has(f)), [], 'every file has its line');
  t.same([...listed].filter((f) => !files.includes(f)), [], 'no line for a file that is gone');
});
