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

/** The agent's one thread pool: unzip and memory sampling tasks, by task file. */
export class ThreadPool {
  private readonly pool: Piscina;

  constructor(maxThreads: number) {
    this.pool = new Piscina({
      filename: workerFile('unzip'),
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
