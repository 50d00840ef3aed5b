import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * This build's version: the release artifact's full one (manifest.json, written by
 * ops/package.sh: `0.1.0-<commit>`), else package.json's. Read once, from the folders this
 * module can run from (src/core under the test runner, dist/src/core, an artifact's root).
 */
export function buildVersion(): string {
  if (cached) return cached;
  cached = readVersion();
  return cached;
}
let cached: string | undefined;

function readVersion(): string {
  for (const rel of ['../../', '../../../']) {
    const manifest = fileURLToPath(new URL(`${rel}manifest.json`, import.meta.url));
    const pkg = fileURLToPath(new URL(`${rel}package.json`, import.meta.url));
    try {
      if (existsSync(manifest)) {
        const v = (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: unknown }).version;
        if (typeof v === 'string' && v) return v;
      }
      if (existsSync(pkg)) {
        const p = JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown; version?: unknown };
        if (p.name === 'nanogrid-worker' && typeof p.version === 'string') return p.version;
      }
    } catch {
      // an unreadable file: the next candidate
    }
  }
  return 'unknown';
}
