import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';

/**
 * Piscina loads JavaScript: find the compiled task file whether this module runs from
 * dist/ (production, demo, bench) or from src/ under the test runner's TypeScript loader.
 */
export function workerFile(name: string): string {
  const candidates = [new URL(`../../workers/${name}.js`, import.meta.url), new URL(`../../dist/workers/${name}.js`, import.meta.url)];
  for (const c of candidates) {
    const p = fileURLToPath(c);
    if (existsSync(p)) return p;
  }
  throw new Error(`compiled worker ${name}.js not found (run "npm run build"): looked in ${candidates.map((c) => fileURLToPath(c)).join(', ')}`);
}

export interface ThreadStats {
  queueSize: number;
  threads: number;
  utilization: number;
  completed: number;
}

/**
 * A Piscina pool for one kind of task file: the agent keeps one for unzip and another for
 * memory sampling, so a long run's sampler never holds a thread an unzip needs.
 */
export class ThreadPool {
  private readonly pool: Piscina;

  constructor(file: 'unzip' | 'memorySampler', maxThreads: number) {
    this.pool = new Piscina({
      filename: workerFile(file),
      minThreads: 1,
      maxThreads,
      idleTimeout: 60_000,
    });
  }

  run<T>(task: unknown, file: string, signal?: AbortSignal): Promise<T> {
    return this.pool.run(task, { filename: workerFile(file), signal }) as Promise<T>;
  }

  stats(): ThreadStats {
    return {
      queueSize: this.pool.queueSize,
      threads: this.pool.threads.length,
      utilization: this.pool.utilization,
      completed: this.pool.completed,
    };
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
