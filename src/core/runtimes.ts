/** The runtimes this agent knows how to run. */
export const RUNTIMES = ['python', 'cpp'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export interface RuntimeConfig {
  image: string;
  /** Run through `/bin/sh -c` in the invocation's workspace. */
  command: string;
  prewarm: number;
  maxContainers: number;
}

/** Maps the runtime names the Controller may send onto the ones this agent knows. */
export function normalizeRuntime(raw: string): Runtime | undefined {
  const r = raw.trim().toLowerCase();
  if (r === 'python' || r === 'python3') return 'python';
  if (r === 'cpp' || r === 'c++') return 'cpp';
  return undefined;
}
