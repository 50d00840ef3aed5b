export class TimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/** Every external call goes through this: nothing waits on another process forever. */
export async function withTimeout<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `check` until it returns a value other than undefined or false, and returns it;
 * throws after `timeoutMs`. The one way tests, the demo and the bench wait for a state.
 */
export async function waitUntil<V>(
  what: string,
  check: () => V | undefined | false | Promise<V | undefined | false>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<V> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new TimeoutError(`waiting for ${what}`, opts.timeoutMs ?? 20_000);
    await sleep(opts.intervalMs ?? 50);
  }
}
