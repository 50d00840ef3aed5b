/** The runtimes this agent knows how to run. */
export const RUNTIMES = ['python', 'cpp'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export interface RuntimeConfig {
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
  /** Fork each run from a pre-started interpreter when the command allows it (python). */
  zygote: boolean;
  /** Compiler calls go through the build cache's front (cpp; src/build/buildCache.ts). */
  buildCache: boolean;
  /**
   * The engine's OCI runtime for this runtime's containers: `runsc` puts each in a gVisor
   * sandbox (a kernel of its own in user space, for untrusted tenants; docs/sandbox.md);
   * unset, dockerd's default (runc).
   */
  ociRuntime?: string | undefined;
}

/** Maps the runtime names the Controller may send onto the ones this agent knows. */
export function normalizeRuntime(raw: string): Runtime | undefined {
  const r = raw.trim().toLowerCase();
  if (r === 'python' || r === 'python3') return 'python';
  if (r === 'cpp' || r === 'c++') return 'cpp';
  return undefined;
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
