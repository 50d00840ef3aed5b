import { RUNNER_MOUNT } from './sandbox.js';

/**
 * The runtimes this agent runs: data (core/runtimeConfig.ts reads them from configuration),
 * with python, cpp and node built in.
 */
export type Runtime = string;

/** One runtime as configured: what its containers are made from and how its pool behaves. */
export interface RuntimeConfig {
  name: Runtime;
  /** Other names a message may give for it (python3, c++ ...), lower case. */
  aliases: readonly string[];
  image: string;
  /** Run through `/bin/sh -c` in the invocation's workspace. */
  command: string;
  /** The prewarm stock's minimum (NANOGRID_PREWARM): kept at all times, within capacity. */
  prewarm: number;
  /** The most stock a stream of new functions may raise it to (NANOGRID_PREWARM_MAX). */
  prewarmMax: number;
  /** Stock beyond the target is removed once this old (NANOGRID_PREWARM_TTL_S). */
  prewarmTtlMs: number;
  /** New functions are counted over this window for the target (NANOGRID_PREWARM_WINDOW_S). */
  prewarmWindowMs: number;
  maxContainers: number;
  /** Fork each run from a pre-started interpreter when the command allows it (a plain `python x.py`). */
  zygote: boolean;
  /** Compiler calls go through the build cache's front (cpp; src/build/buildCache.ts). */
  buildCache: boolean;
  /**
   * The handler mode's command (a plain command line, run in the workspace as the sandbox
   * user with NANOGRID_HANDLER=module.function; runner/handler.c has its protocol), or null
   * for a runtime without one: a function whose nanogrid.json names a handler is refused.
   */
  handler: string | null;
  /**
   * The engine's OCI runtime for this runtime's containers: `runsc` puts each in a gVisor
   * sandbox (a kernel of its own in user space, for untrusted tenants; docs/sandbox.md);
   * unset, dockerd's default (runc).
   */
  ociRuntime?: string | undefined;
}

/** A runtime's definition before the environment's settings: the built-ins and NANOGRID_RUNTIMES_FILE's. */
export interface RuntimeDefinition {
  aliases: string[];
  image: string;
  command: string;
  zygote: boolean;
  buildCache: boolean;
  handler: string | null;
  prewarm: number;
  /** Unset: the minimum plus `stockOver`, within capacity (none when the minimum is 0). */
  prewarmMax?: number | undefined;
  stockOver: number;
  maxContainers: number;
  ociRuntime?: string | undefined;
}

/**
 * The built-in runtimes. python 2 / cpp 1 is the contract's prewarm; node keeps no stock
 * by default (its first run in a new container starts node itself, about 40 ms here).
 */
export const BUILTIN_RUNTIMES: Readonly<Record<string, RuntimeDefinition>> = {
  python: { aliases: ['python3'], image: 'nanogrid/python:local', command: 'python main.py', zygote: true, buildCache: false, handler: `python3 ${RUNNER_MOUNT}/handler.py`, prewarm: 2, stockOver: 2, maxContainers: 4 },
  cpp: { aliases: ['c++'], image: 'nanogrid/cpp:local', command: '/bin/bash run.sh', zygote: false, buildCache: true, handler: null, prewarm: 1, stockOver: 1, maxContainers: 2 },
  node: { aliases: ['nodejs', 'javascript', 'js'], image: 'nanogrid/node:local', command: 'node main.js', zygote: false, buildCache: false, handler: `node ${RUNNER_MOUNT}/handler.js`, prewarm: 0, stockOver: 2, maxContainers: 2 },
};

/** A runtime's name: what messages, settings and labels use. */
export const RUNTIME_NAME = /^[a-z][a-z0-9+._-]{0,31}$/;

/** The runtimes of one agent, by name and alias. */
export class RuntimeTable {
  private readonly byName = new Map<string, RuntimeConfig>();

  constructor(readonly list: readonly RuntimeConfig[]) {
    for (const r of list) {
      for (const n of [r.name, ...r.aliases]) {
        const other = this.byName.get(n);
        if (other) throw new Error(`runtime name "${n}" is given to both ${other.name} and ${r.name}`);
        this.byName.set(n, r);
      }
    }
  }

  get names(): Runtime[] {
    return this.list.map((r) => r.name);
  }

  /** The runtime a message's name or alias stands for (case and spaces ignored), or undefined. */
  resolve(raw: string): Runtime | undefined {
    return this.byName.get(raw.trim().toLowerCase())?.name;
  }

  get(name: Runtime): RuntimeConfig | undefined {
    const r = this.byName.get(name);
    return r?.name === name ? r : undefined;
  }

  /** A runtime the caller knows is configured (the pools' own names). */
  require(name: Runtime): RuntimeConfig {
    const r = this.get(name);
    if (!r) throw new Error(`runtime ${name} is not configured`);
    return r;
  }

  /** For messages: `python (python3), cpp (c++)`. */
  describe(): string {
    return this.list.map((r) => (r.aliases.length ? `${r.name} (${r.aliases.join(', ')})` : r.name)).join(', ');
  }

  /** Every pool's capacity together. */
  get containers(): number {
    return this.list.reduce((n, r) => n + r.maxContainers, 0);
  }
}

/**
 * A command's words when it is a plain command line (no quoting, variables, redirection
 * or other shell syntax), so it can be started without a shell; null otherwise.
 */
export function plainArgv(command: string): string[] | null {
  const words = command.trim().split(/\s+/);
  if (words.length === 0 || words[0] === '') return null;
  if (words.some((w) => /["'`$\\;&|<>*?(){}\[\]~#!=]/.test(w))) return null;
  return words;
}

/** The argv the zygote runs: a plain `python[3[.x]] script.py [args]` command, or null. */
export function zygoteArgv(command: string): string[] | null {
  const words = plainArgv(command);
  if (!words || words.length < 2 || !/^(\/[\w./-]*\/)?python(3(\.\d+)?)?$/.test(words[0]!) || !/^[\w./-]+\.py$/.test(words[1]!)) return null;
  return words;
}
