// Steady state: a queue kept fed with a bounded number of messages outstanding, measured
// over a window after a warm-up. A burst of N sent at once is mostly ramp (the pool fills,
// then drains); this keeps the pool busy for the whole window instead.
import type { LocalClient } from '../src/local/client.js';
import type { Result } from '../src/core/result.js';

export interface FeedOptions {
  client: LocalClient;
  /** The message for request id `id` (without requestId). */
  message: (i: number) => Record<string, unknown>;
  /** Results to wait for before the window opens. */
  warmup: number;
  /** Results measured: the window closes at the last of them. */
  measured: number;
  /** Messages outstanding (sent, not yet answered): enough to keep every slot busy. */
  inFlight: number;
  /** Called when the window opens and when it closes (CPU counters are read there). */
  onWindow?: (edge: 'open' | 'close') => Promise<void> | void;
  progress?: (done: number, total: number) => void;
}

export interface FeedRun {
  seconds: number;
  perSecond: number;
  /** End to end (send to result heard) of the results in the window, ms. */
  e2e: number[];
  kinds: Record<string, number>;
  failed: number;
}

let seq = 0;

export async function feed(o: FeedOptions): Promise<FeedRun> {
  const total = o.warmup + o.measured;
  let sent = 0;
  let done = 0;
  let failed = 0;
  let sending = false;
  let opened = 0;
  let openEdge: Promise<void> | undefined;
  const e2e: number[] = [];
  const kinds: Record<string, number> = {};
  let finish!: () => void;
  let fail!: (err: unknown) => void;
  const ended = new Promise<void>((resolve, reject) => ((finish = resolve), (fail = reject)));
  const onResult = (r: Result | undefined, sentAt: number) => {
    done++;
    if (!r?.success) failed++;
    if (done === o.warmup) {
      opened = performance.now();
      openEdge = Promise.resolve(o.onWindow?.('open'));
    } else if (done > o.warmup) {
      e2e.push(Date.now() - sentAt);
      const k = r?.startKind ?? 'none';
      kinds[k] = (kinds[k] ?? 0) + 1;
    }
    if (done === total) finish();
    else void top();
  };
  const top = async () => {
    if (sending) return;
    sending = true;
    try {
      while (sent < total && sent - done < o.inFlight) {
        const n = Math.min(10, total - sent, o.inFlight - (sent - done));
        const batch = Array.from({ length: n }, (_, j) => ({ requestId: `s-${process.pid}-${++seq}`, ...o.message(sent + j) }));
        sent += n;
        const at = Date.now();
        for (const m of batch) {
          void o.client.waitForResult(m.requestId, 300_000).then(
            (r) => (o.client.forget(m.requestId), onResult(r, at)),
            () => onResult(undefined, at),
          );
        }
        await o.client.sendBatch(batch);
      }
    } catch (err) {
      fail(err);
    } finally {
      sending = false;
    }
  };
  if (o.warmup === 0) {
    opened = performance.now();
    openEdge = Promise.resolve(o.onWindow?.('open'));
  }
  const timer = o.progress ? setInterval(() => o.progress!(done, total), 5000) : undefined;
  void top();
  try {
    await ended;
  } finally {
    clearInterval(timer);
  }
  const seconds = (performance.now() - opened) / 1000;
  await openEdge;
  await o.onWindow?.('close');
  return { seconds, perSecond: o.measured / seconds, e2e, kinds, failed };
}
