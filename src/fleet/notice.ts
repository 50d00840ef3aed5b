/** Why the instance is going away, as the metadata says it. */
export type TerminationNotice =
  | { kind: 'lifecycle'; state: string }
  | { kind: 'spot'; action: string; deadline: number };

/**
 * `autoscaling/target-lifecycle-state`: "Terminated" once the group has begun terminating
 * the instance (the termination hook holds it in Terminating:Wait meanwhile). Other states
 * (InService, Standby, Warmed:*, Detached) are not a termination.
 */
export function parseLifecycleState(text: string | null): TerminationNotice | null {
  const state = text?.trim();
  return state === 'Terminated' ? { kind: 'lifecycle', state } : null;
}

/**
 * `spot/instance-action`: 404 until EC2 decides, then {"action": "terminate"|"stop"|
 * "hibernate", "time": "2026-11-23T08:22:00Z"}, about two minutes ahead. An unreadable
 * time is taken as two minutes from `now`: a notice is never ignored for its format.
 */
export function parseSpotAction(text: string | null, now: number): TerminationNotice | null {
  if (text === null || text.trim() === '') return null;
  let action = 'terminate';
  let deadline = now + 120_000;
  try {
    const o = JSON.parse(text) as { action?: unknown; time?: unknown };
    if (typeof o.action === 'string' && o.action) action = o.action;
    const t = typeof o.time === 'string' ? Date.parse(o.time) : NaN;
    if (Number.isFinite(t)) deadline = t;
  } catch {
    // keep the defaults
  }
  return { kind: 'spot', action, deadline };
}
