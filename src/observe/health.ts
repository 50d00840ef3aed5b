import type { EngineWatch } from '../pool/engineWatch.js';

export type Phase = 'starting' | 'ready' | 'draining' | 'drained' | 'stopping';

export interface Health {
  ok: boolean;
  phase?: Phase;
  parts: Record<string, { ok: boolean; detail?: string; [more: string]: unknown }>;
}

export interface HealthSources {
  phase: () => Phase;
  engine: EngineWatch;
  queue: () => { reachable: boolean; lastError: string | null | undefined };
  redisPing: () => Promise<boolean>;
}

/**
 * Liveness, for the Auto Scaling group: this process and its engine, nothing shared. An
 * outage of SQS or Redis must not mark every worker unhealthy and replace the fleet.
 */
export async function liveness(s: HealthSources): Promise<Health> {
  const up = await s.engine.check();
  const e = s.engine.status();
  return { ok: up, phase: s.phase(), parts: { process: { ok: true }, docker: up ? { ok: true } : { ok: false, detail: `unreachable since ${e.since}` } } };
}

/** Readiness: started, and the engine and the queue answer (Redis reported only: results wait in the outbox). */
export async function readiness(s: HealthSources): Promise<Health> {
  const phase = s.phase();
  if (phase !== 'ready') return { ok: false, phase, parts: {} };
  const up = await s.engine.check();
  const e = s.engine.status();
  const docker = up
    ? { ok: true, outages: e.outages, downSecondsTotal: e.downSecondsTotal }
    : { ok: false, detail: `unreachable since ${e.since}; intake paused: ${e.lastError ?? ''}`, outages: e.outages, downSecondsTotal: e.downSecondsTotal };
  const q = s.queue();
  const queue = q.reachable ? { ok: true } : { ok: false, detail: q.lastError ?? 'unknown' };
  const redisOk = await s.redisPing();
  return { ok: docker.ok && queue.ok, phase, parts: { docker, queue, redis: redisOk ? { ok: true } : { ok: false, detail: 'not answering; results kept in outbox' } } };
}
