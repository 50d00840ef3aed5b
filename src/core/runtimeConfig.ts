import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, int, read, type Env } from './envRead.js';
import { BUILTIN_RUNTIMES, plainArgv, RUNTIME_NAME, RuntimeTable, type RuntimeConfig, type RuntimeDefinition } from './runtimes.js';

const OCI_RUNTIME = /^[A-Za-z0-9._-]{1,64}$/;

/** NANOGRID_BUILD_CACHE_MB's default. */
export const DEFAULT_BUILD_CACHE_MB = 512;

/** One runtime in NANOGRID_RUNTIMES_FILE: a built-in's fields to change, or a new runtime. */
const definitionSchema = z
  .object({
    aliases: z.array(z.string().regex(RUNTIME_NAME, 'lower-case letters, digits, + . _ -')).max(16).optional(),
    image: z.string().min(1).max(512).optional(),
    command: z.string().min(1).max(4096).optional(),
    zygote: z.boolean().optional(),
    buildCache: z.boolean().optional(),
    handler: z.string().min(1).max(4096).nullable().optional(),
    prewarm: z.number().int().min(0).max(1024).optional(),
    prewarmMax: z.number().int().min(0).max(1024).optional(),
    maxContainers: z.number().int().min(1).max(1024).optional(),
    ociRuntime: z.string().regex(OCI_RUNTIME).optional(),
  })
  .strict();
const fileSchema = z.record(z.string(), definitionSchema);

/** NANOGRID_IMAGE_<NAME>: the runtime's name in upper case, other characters as _. */
export function runtimeVariable(prefix: string, name: string, suffix = ''): string {
  return `${prefix}${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}${suffix}`;
}

/** The built-ins with NANOGRID_RUNTIMES_FILE's definitions over them. */
export function runtimeDefinitions(env: Env, readText: (path: string) => string = (p) => readFileSync(p, 'utf8')): Record<string, RuntimeDefinition> {
  const defs: Record<string, RuntimeDefinition> = Object.fromEntries(Object.entries(BUILTIN_RUNTIMES).map(([n, d]) => [n, { ...d, aliases: [...d.aliases] }]));
  const path = env.NANOGRID_RUNTIMES_FILE?.trim();
  if (!path) return defs;
  let json: unknown;
  try {
    json = JSON.parse(readText(path));
  } catch (err) {
    throw new ConfigError('NANOGRID_RUNTIMES_FILE', `${path}: ${(err as Error).message}`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    throw new ConfigError('NANOGRID_RUNTIMES_FILE', `${path}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ')}`);
  }
  for (const [name, given] of Object.entries(parsed.data)) {
    if (!RUNTIME_NAME.test(name)) throw new ConfigError('NANOGRID_RUNTIMES_FILE', `${path}: ${JSON.stringify(name.slice(0, 64))} is not a runtime name (lower-case letters, digits, + . _ -, at most 32, a letter first)`);
    const base = defs[name];
    if (!base && (!given.image || !given.command)) {
      throw new ConfigError('NANOGRID_RUNTIMES_FILE', `${path}: the new runtime ${name} needs an image and a command`);
    }
    const d: RuntimeDefinition = base ?? { aliases: [], image: given.image!, command: given.command!, zygote: false, buildCache: false, handler: null, prewarm: 0, stockOver: 2, maxContainers: 2 };
    defs[name] = {
      ...d,
      ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
      aliases: given.aliases ?? d.aliases,
    };
  }
  return defs;
}

/** A name or alias of a defined runtime, for settings of the form runtime=value. */
type Resolve = (raw: string) => string | undefined;

function resolverOf(defs: Record<string, RuntimeDefinition>): Resolve {
  const names = new Map<string, string>();
  for (const [n, d] of Object.entries(defs)) {
    for (const a of [n, ...d.aliases]) {
      const other = names.get(a);
      if (other !== undefined && other !== n) throw new ConfigError('NANOGRID_RUNTIMES_FILE', `runtime name "${a}" is given to both ${other} and ${n}`);
      names.set(a, n);
    }
  }
  return (raw) => names.get(raw.trim().toLowerCase());
}

function known(defs: Record<string, RuntimeDefinition>): string {
  return Object.keys(defs).join(', ');
}

/** Parses `python=2,cpp=1` into per-runtime numbers, rejecting unknown runtimes. */
export function parsePerRuntime(
  name: string,
  raw: string | undefined,
  fallback: Record<string, number>,
  resolve: Resolve = resolverOf(BUILTIN_RUNTIMES),
  knownNames = known(BUILTIN_RUNTIMES),
): Record<string, number> {
  const out = { ...fallback };
  if (raw === undefined || raw.trim() === '') return out;
  for (const part of raw.split(',')) {
    const m = /^\s*([a-z0-9+._-]+)\s*=\s*(\d+)\s*$/i.exec(part);
    if (!m) throw new ConfigError(name, `"${part}" is not runtime=number (for example python=2,cpp=1)`);
    const runtime = resolve(m[1]!);
    if (!runtime) throw new ConfigError(name, `unknown runtime "${m[1]}" (known: ${knownNames})`);
    out[runtime] = Number(m[2]);
  }
  return out;
}

/** Parses `python=runsc,cpp=runc`: the engine's OCI runtime per runtime (unset: dockerd's default). */
export function parseOciRuntimes(raw: string | undefined, resolve: Resolve = resolverOf(BUILTIN_RUNTIMES), knownNames = known(BUILTIN_RUNTIMES)): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw === undefined || raw.trim() === '') return out;
  for (const part of raw.split(',')) {
    const m = /^\s*([a-z0-9+._-]+)\s*=\s*([A-Za-z0-9._-]{1,64})\s*$/i.exec(part);
    if (!m) throw new ConfigError('NANOGRID_OCI_RUNTIME', `"${part}" is not runtime=ociRuntime (for example python=runsc)`);
    const runtime = resolve(m[1]!);
    if (!runtime) throw new ConfigError('NANOGRID_OCI_RUNTIME', `unknown runtime "${m[1]}" (known: ${knownNames})`);
    out[runtime] = m[2]!;
  }
  return out;
}

/**
 * The agent's runtimes: the definitions (built-ins, NANOGRID_RUNTIMES_FILE), those that
 * NANOGRID_RUNTIMES enables (all by default), and the per-runtime variables over them.
 */
export function loadRuntimes(env: Env, o: { buildCacheMb: number; readText?: (path: string) => string }): RuntimeTable {
  const defs = runtimeDefinitions(env, o.readText);
  const resolve = resolverOf(defs);
  const names = known(defs);
  const listed = env.NANOGRID_RUNTIMES?.trim();
  const enabled = listed
    ? [...new Set(listed.split(',').map((n) => {
        const r = resolve(n);
        if (!r) throw new ConfigError('NANOGRID_RUNTIMES', `unknown runtime "${n.trim()}" (known: ${names}; define others in NANOGRID_RUNTIMES_FILE)`);
        return r;
      }))]
    : Object.keys(defs);

  const perRuntime = (variable: string, pick: (d: RuntimeDefinition) => number) =>
    parsePerRuntime(variable, env[variable], Object.fromEntries(Object.entries(defs).map(([n, d]) => [n, pick(d)])), resolve, names);
  const prewarm = perRuntime('NANOGRID_PREWARM', (d) => d.prewarm);
  const maxContainers = perRuntime('NANOGRID_MAX_CONTAINERS', (d) => d.maxContainers);
  // The reactive stock's ceiling: by default a few above the minimum, within capacity; a
  // runtime asked for no stock gets none unless NANOGRID_PREWARM_MAX asks.
  const prewarmMax = perRuntime('NANOGRID_PREWARM_MAX', (d) => d.prewarmMax ?? -1);
  const oci = parseOciRuntimes(env.NANOGRID_OCI_RUNTIME, resolve, names);
  const prewarmTtlMs = read(env, 'NANOGRID_PREWARM_TTL_S', int(1, 86_400), 60) * 1000;
  const prewarmWindowMs = read(env, 'NANOGRID_PREWARM_WINDOW_S', int(1, 3600), 10) * 1000;

  const list = enabled.map((name): RuntimeConfig => {
    const d = defs[name]!;
    const max = maxContainers[name]!;
    const min = prewarm[name]!;
    if (max < 1) throw new ConfigError('NANOGRID_MAX_CONTAINERS', `${name} must allow at least 1 container`);
    if (min > max) throw new ConfigError('NANOGRID_PREWARM', `${name}=${min} exceeds NANOGRID_MAX_CONTAINERS ${name}=${max}`);
    const ceiling = prewarmMax[name]! >= 0 ? prewarmMax[name]! : min === 0 ? 0 : Math.min(max, min + d.stockOver);
    if (ceiling < min) throw new ConfigError('NANOGRID_PREWARM_MAX', `${name}=${ceiling} is below NANOGRID_PREWARM ${name}=${min}`);
    return {
      name,
      aliases: d.aliases,
      image: read(env, runtimeVariable('NANOGRID_IMAGE_', name), z.string().min(1), d.image),
      command: read(env, runtimeVariable('NANOGRID_COMMAND_', name), z.string().min(1), d.command),
      prewarm: min,
      prewarmMax: ceiling,
      prewarmTtlMs,
      prewarmWindowMs,
      maxContainers: max,
      zygote: read(env, runtimeVariable('NANOGRID_', name, '_ZYGOTE'), z.enum(['on', 'off']), d.zygote ? 'on' : 'off') === 'on',
      buildCache: d.buildCache && o.buildCacheMb > 0,
      handler: handlerCommand(name, d.handler),
      ociRuntime: oci[name] ?? d.ociRuntime,
    };
  });
  try {
    return new RuntimeTable(list);
  } catch (err) {
    throw new ConfigError('NANOGRID_RUNTIMES_FILE', (err as Error).message);
  }
}

/** A runtime's handler command: a plain command line (it starts without a shell), or null. */
function handlerCommand(name: string, command: string | null): string | null {
  if (command === null) return null;
  if (!plainArgv(command)) throw new ConfigError('NANOGRID_RUNTIMES_FILE', `${name}.handler must be a plain command line (no quotes, variables or redirection): ${JSON.stringify(command.slice(0, 200))}`);
  return command;
}

/** The built-ins with their defaults: what a message is checked against when no table is given. */
export const DEFAULT_RUNTIMES = loadRuntimes({}, { buildCacheMb: DEFAULT_BUILD_CACHE_MB });
