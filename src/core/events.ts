import { EventEmitter } from 'node:events';
import type { Result, StartKind } from './result.js';

/**
 * What the agent's parts report as they work, in one typed map: metrics and CloudWatch
 * subscribe to it in one place (observe/recordMetrics.ts). Each part may emit only its own
 * events (Emitter<...>); none of them knows who listens.
 */
export interface AgentEvents {
  /** The code cache served a version, downloaded one or revalidated one. */
  code: [event: 'hit' | 'download' | 'revalidated_unchanged' | 'revalidated_changed' | 'revalidation_failed'];
  /** A side effect failed (it never fails an invocation). */
  sinkFailure: [sink: 'redis' | 'cloudwatch' | 'cloudwatch_logs', op: string];
  /** A file a run left under output/: stored, failed, or skipped by a limit. */
  output: [outcome: 'stored' | 'failed' | 'skipped', bytes: number];
  /** A code version offered to the archive, and what became of it. */
  archive: [event: 'archived' | 'already_there' | 'failed' | 'dropped'];
  /** An SQS request sent, by API operation. */
  sqsRequest: [op: string];
  /** An SQS call that failed, by operation. */
  sqsError: [op: string];
  /** A run that happened, and its result. */
  ran: [result: Result, startKind: StartKind];
}

export type EventName = keyof AgentEvents;

/** What a part holds of the bus: the emitting of its own events. */
export interface Emitter<K extends EventName> {
  emit<E extends K>(event: E, ...args: AgentEvents[E]): boolean;
}

export class EventBus extends EventEmitter<AgentEvents> {}
