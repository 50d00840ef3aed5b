// Piscina task: sample a cgroup's memory usage file at a fine interval until the main
// thread raises the stop flag (or the deadline passes) and return the highest reading.
// Used where the kernel offers no resettable peak counter.
import { open } from 'node:fs/promises';

export interface SampleTask {
  usageFile: string;
  intervalMs: number;
  deadlineMs: number;
  /** Int32Array[2] over a SharedArrayBuffer: [0] the main thread stores 1 to stop; [1] set to 1 here once sampling runs. */
  stop: SharedArrayBuffer;
}

export interface SampleOutcome {
  peakBytes: number | null;
  samples: number;
}

export default async function sample(task: SampleTask): Promise<SampleOutcome> {
  const flag = new Int32Array(task.stop);
  const deadline = Date.now() + task.deadlineMs;
  let peak: number | null = null;
  let samples = 0;
  const fh = await open(task.usageFile, 'r').catch(() => undefined);
  if (!fh) {
    Atomics.store(flag, 1, 1);
    return { peakBytes: null, samples: 0 };
  }
  const buf = Buffer.alloc(64);
  // The run starts only once this is seen: nothing of it goes unsampled.
  Atomics.store(flag, 1, 1);
  Atomics.notify(flag, 1);
  try {
    while (Atomics.load(flag, 0) === 0 && Date.now() < deadline) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      const v = Number(buf.subarray(0, bytesRead).toString().trim());
      if (Number.isFinite(v)) {
        peak = peak === null ? v : Math.max(peak, v);
        samples++;
      }
      // Atomics.wait blocks this worker thread only, and wakes at once on stop.
      Atomics.wait(flag, 0, 0, task.intervalMs);
    }
  } finally {
    await fh.close();
  }
  return { peakBytes: peak, samples };
}
