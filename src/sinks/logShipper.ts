import { CreateLogStreamCommand, PutLogEventsCommand, type CloudWatchLogsClient, type InputLogEvent } from '@aws-sdk/client-cloudwatch-logs';
import type { Emitter } from '../core/events.js';
import type { Logger } from '../core/log.js';

/** PutLogEvents' own limits (CloudWatch Logs quotas): a batch's bytes count 26 per event on top of its UTF-8. */
export const PUT_LIMITS = { batchBytes: 1_048_576, batchEvents: 10_000, eventOverhead: 26, spanMs: 24 * 3_600_000 } as const;
/** An event's most: the quota is 1 MB now, 256 KiB in older regions and emulators; the lower one fits both. */
export const MAX_EVENT_BYTES = 256 * 1024 - PUT_LIMITS.eventOverhead;
/** What is kept while CloudWatch Logs cannot be reached; the oldest go first past it (journald keeps everything). */
export const DEFAULT_BUFFER_BYTES = 8 * 1_048_576;

export interface ShipperOptions {
  group: string;
  stream: string;
  flushMs: number;
  timeoutMs: number;
  bufferBytes?: number;
  events?: Emitter<'sinkFailure'>;
}

/** Errors about the batch itself: sending it again cannot succeed. */
const REFUSED = new Set(['InvalidParameterException', 'DataAlreadyAcceptedException', 'SerializationException']);

interface Pending {
  event: InputLogEvent;
  bytes: number;
}

/**
 * Ships lines to one CloudWatch Logs stream in batches: on a timer, early when a batch's
 * worth is waiting, and at shutdown. Pushing is an append (it sits on the warm path: every
 * log line of the agent goes through it); sending happens off it. A failed send keeps the
 * batch for the next flush, within a bounded buffer whose oldest lines are dropped and
 * counted: nothing an outage of CloudWatch does reaches an invocation or grows without end.
 * The group is the stack's (with its retention): this creates only its own stream.
 */
export class LogShipper {
  private queue: Pending[] = [];
  /** Lines at the queue's head in the call being sent: a drop meanwhile takes from them. */
  private inFlight = 0;
  private bytes = 0;
  private dropped = 0;
  private truncated = 0;
  private client: CloudWatchLogsClient | undefined;
  private log: Logger | undefined;
  private streamReady = false;
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Immediate | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly opts: ShipperOptions) {}

  /** A pino destination: each write is one JSON line. */
  readonly destination = { write: (line: string): void => this.push(line.endsWith('\n') ? line.slice(0, -1) : line) };

  push(message: string, timestamp = Date.now()): void {
    if (this.closed) return;
    let bytes = Buffer.byteLength(message);
    if (bytes > MAX_EVENT_BYTES) {
      message = Buffer.from(message).subarray(0, MAX_EVENT_BYTES - 64).toString().replace(/\uFFFD$/, '') + ` ...[truncated: ${bytes} bytes]`;
      bytes = Buffer.byteLength(message);
      this.truncated++;
    }
    const cost = bytes + PUT_LIMITS.eventOverhead;
    this.queue.push({ event: { timestamp, message }, bytes: cost });
    this.bytes += cost;
    const cap = this.opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
    while (this.bytes > cap && this.queue.length > 1) {
      this.bytes -= this.queue.shift()!.bytes;
      if (this.inFlight > 0) this.inFlight--;
      this.dropped++;
    }
    if (this.client && !this.soon && (this.bytes >= PUT_LIMITS.batchBytes || this.queue.length >= PUT_LIMITS.batchEvents)) {
      this.soon = setImmediate(() => {
        this.soon = undefined;
        void this.flush();
      });
    }
  }

  /** Sending starts: lines pushed before (the agent's start) are in the first batch. */
  start(client: CloudWatchLogsClient, log: Logger): void {
    this.client = client;
    this.log = log;
    this.timer = setInterval(() => void this.flush(), this.opts.flushMs);
    this.timer.unref();
  }

  get pending(): number {
    return this.queue.length;
  }

  async flush(): Promise<void> {
    if (!this.client) return;
    if (this.flushing) return this.flushing;
    this.flushing = this.send().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** The last flush (bounded by the shipper's timeout), then no more sends. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.soon) clearImmediate(this.soon);
    await this.flushing;
    await this.flush();
    this.closed = true;
    this.client?.destroy();
  }

  private async send(): Promise<void> {
    this.report();
    // What waits now, not what arrives meanwhile: one flush is a bounded number of calls
    // (and the shipper's own lines about a call wait for the next flush).
    let left = this.queue.length;
    while (left > 0 && this.queue.length > 0) {
      const n = Math.min(this.batchLength(), left);
      const batch = this.queue.slice(0, n).map((p) => p.event);
      // PutLogEvents wants them in order; a clock stepped back must not fail the batch.
      batch.sort((a, b) => a.timestamp! - b.timestamp!);
      this.inFlight = n;
      const sent = await this.put(batch);
      const done = this.inFlight;
      this.inFlight = 0;
      if (sent === 'retry') return;
      if (sent === 'refused') this.dropped += done;
      for (const p of this.queue.splice(0, done)) this.bytes -= p.bytes;
      left -= n;
    }
  }

  /** How many lines from the head fit one PutLogEvents call. */
  private batchLength(): number {
    let bytes = 0;
    let n = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const p of this.queue) {
      const at = p.event.timestamp!;
      const span = Math.max(max, at) - Math.min(min, at);
      if (n >= PUT_LIMITS.batchEvents || bytes + p.bytes > PUT_LIMITS.batchBytes || span >= PUT_LIMITS.spanMs) break;
      bytes += p.bytes;
      min = Math.min(min, at);
      max = Math.max(max, at);
      n++;
    }
    return Math.max(1, n);
  }

  /** 'sent'; 'retry' (kept for the next flush); 'refused' (a batch the service will never take: dropped, counted). */
  private async put(batch: InputLogEvent[]): Promise<'sent' | 'retry' | 'refused'> {
    const { group, stream, timeoutMs } = this.opts;
    try {
      if (!this.streamReady) await this.createStream();
      let out;
      try {
        out = await this.client!.send(new PutLogEventsCommand({ logGroupName: group, logStreamName: stream, logEvents: batch }), { abortSignal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        // The stream went away (deleted by hand, or a retention sweep): made again, sent once more.
        if ((err as { name?: string }).name !== 'ResourceNotFoundException') throw err;
        this.streamReady = false;
        await this.createStream();
        out = await this.client!.send(new PutLogEventsCommand({ logGroupName: group, logStreamName: stream, logEvents: batch }), { abortSignal: AbortSignal.timeout(timeoutMs) });
      }
      const r = out.rejectedLogEventsInfo;
      if (r) this.log?.warn({ tag: 'LOGS', group, stream, rejected: r }, 'CloudWatch Logs rejected some lines of a batch (too old, too new or past the retention)');
      return 'sent';
    } catch (err) {
      this.opts.events?.emit('sinkFailure', 'cloudwatch_logs', 'put_log_events');
      // A batch the service refuses as such would block every line behind it if it waited.
      if (REFUSED.has((err as { name?: string }).name ?? '')) {
        this.log?.warn({ tag: 'LOGS', group, stream, err, lines: batch.length }, 'PutLogEvents refused a batch: its lines are dropped (journald has them)');
        return 'refused';
      }
      this.log?.warn({ tag: 'LOGS', group, stream, err, waiting: this.queue.length }, 'PutLogEvents failed: the lines wait for the next flush (journald has them meanwhile)');
      return 'retry';
    }
  }

  private async createStream(): Promise<void> {
    const { group, stream, timeoutMs } = this.opts;
    try {
      await this.client!.send(new CreateLogStreamCommand({ logGroupName: group, logStreamName: stream }), { abortSignal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      if ((err as { name?: string }).name !== 'ResourceAlreadyExistsException') {
        if ((err as { name?: string }).name === 'ResourceNotFoundException') {
          throw new Error(`log group ${group} does not exist: the stack creates it with its retention (the agent never creates a group, whose retention would be forever)`, { cause: err });
        }
        throw err;
      }
    }
    this.streamReady = true;
  }

  /** Lines lost to the buffer's bound or cut to the event's limit, said once per flush. */
  private report(): void {
    if (this.dropped === 0 && this.truncated === 0) return;
    const { dropped, truncated } = this;
    this.dropped = 0;
    this.truncated = 0;
    this.log?.warn({ tag: 'LOGS', dropped, truncated, bufferBytes: this.opts.bufferBytes ?? DEFAULT_BUFFER_BYTES }, 'log lines dropped (CloudWatch Logs unreachable past the buffer) or truncated (past the event limit)');
  }
}
