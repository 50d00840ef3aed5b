import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { sleep, withTimeout } from '../core/timeout.js';
import type { Emitter } from '../core/events.js';
import type { Logger } from '../core/log.js';

/** SQS takes at most this many messages per receive and entries per batch call. */
export const SQS_MAX_BATCH = 10;
const DELETE_ATTEMPTS = 3;

export interface MessageLeaseOptions {
  sqs: SQSClient;
  queueUrl: string;
  visibilityTimeoutS: number;
  /** Long-poll wait per receive (SQS allows 0-20 s). */
  receiveWaitS: number;
  /** Bound on every call but the long poll, which the SDK's request timeout bounds. */
  timeoutMs: number;
  log: Logger;
  /** Every request sent (by API operation: ReceiveMessage, DeleteMessageBatch, ...), and every failed call. */
  events?: Emitter<'sqsRequest' | 'sqsError'>;
}

/**
 * How long a delete waits for others to share its batch call. The result is stored before
 * the delete, so waiting costs only a redelivery (answered from the stored result) were the
 * agent to die meanwhile; at 500/s a 20 ms window fills a batch of 10.
 */
const DELETE_WINDOW_MS = 20;

interface PendingDelete {
  receiptHandle: string;
  log: Logger;
  done: (deleted: boolean) => void;
}

/**
 * Every SQS call the agent makes about its messages: receive, delete, make visible again
 * after a delay, keep held ones invisible (the heartbeat), and read the queue's redrive
 * policy. The supervisor decides; this module only talks to the queue. Deletes asked for
 * in the same moment go out as one DeleteMessageBatch.
 */
export class MessageLeases {
  private deletes: PendingDelete[] = [];
  private flushScheduled = false;

  constructor(private readonly opts: MessageLeaseOptions) {}

  /** One long poll for up to `max` messages (at most SQS_MAX_BATCH). Throws on failure. */
  async receive(max: number, signal: AbortSignal): Promise<Message[]> {
    this.opts.events?.emit('sqsRequest', 'ReceiveMessage');
    const res = await this.opts.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.opts.queueUrl,
        MaxNumberOfMessages: Math.min(SQS_MAX_BATCH, max),
        WaitTimeSeconds: this.opts.receiveWaitS,
        VisibilityTimeout: this.opts.visibilityTimeoutS,
        MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
      }),
      { abortSignal: signal },
    );
    return res.Messages ?? [];
  }

  /**
   * Deletes a message: batched with the other deletes of this moment, then retried alone
   * if its batch entry failed. False when it could not be deleted (a redelivery follows,
   * and is answered from the stored result).
   */
  delete(receiptHandle: string, log: Logger): Promise<boolean> {
    return new Promise<boolean>((done) => {
      this.deletes.push({ receiptHandle, log, done });
      if (this.deletes.length >= SQS_MAX_BATCH) void this.flushDeletes();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setTimeout(() => void this.flushDeletes(), DELETE_WINDOW_MS);
      }
    });
  }

  private async flushDeletes(): Promise<void> {
    this.flushScheduled = false;
    while (this.deletes.length > 0) {
      const batch = this.deletes.splice(0, SQS_MAX_BATCH);
      if (batch.length === 1) {
        batch[0]!.done(await this.deleteOne(batch[0]!.receiptHandle, batch[0]!.log));
        continue;
      }
      let failed = new Set(batch.map((_, i) => String(i)));
      try {
        this.opts.events?.emit('sqsRequest', 'DeleteMessageBatch');
        const res = await withTimeout(
          'sqs delete batch',
          this.opts.timeoutMs,
          this.opts.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: this.opts.queueUrl, Entries: batch.map((d, i) => ({ Id: String(i), ReceiptHandle: d.receiptHandle })) })),
        );
        failed = new Set((res.Failed ?? []).map((f) => f.Id ?? ''));
      } catch {
        this.opts.events?.emit('sqsError', 'delete');
      }
      batch.forEach((d, i) => {
        if (!failed.has(String(i))) d.done(true);
        else void this.deleteOne(d.receiptHandle, d.log).then(d.done);
      });
    }
  }

  private async deleteOne(receiptHandle: string, log: Logger): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        this.opts.events?.emit('sqsRequest', 'DeleteMessage');
        await withTimeout(
          'sqs delete',
          this.opts.timeoutMs,
          this.opts.sqs.send(new DeleteMessageCommand({ QueueUrl: this.opts.queueUrl, ReceiptHandle: receiptHandle })),
        );
        return true;
      } catch (err) {
        this.opts.events?.emit('sqsError', 'delete');
        if (attempt >= DELETE_ATTEMPTS) {
          log.error({ tag: 'SQS', err }, 'delete failed; a redelivery will be answered from the stored result');
          return false;
        }
        await sleep(200 * attempt);
      }
    }
  }

  /** Makes a held message visible again after `afterS` seconds (0: at once). */
  async makeVisible(receiptHandle: string, afterS: number, log: Logger): Promise<void> {
    try {
      this.opts.events?.emit('sqsRequest', 'ChangeMessageVisibility');
      await withTimeout(
        'sqs change visibility',
        this.opts.timeoutMs,
        this.opts.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: this.opts.queueUrl, ReceiptHandle: receiptHandle, VisibilityTimeout: afterS })),
      );
    } catch (err) {
      this.opts.events?.emit('sqsError', 'change_visibility');
      log.warn({ tag: 'SQS', err }, 'visibility not changed; the message returns when its timeout ends');
    }
  }

  /** Keeps held messages invisible for another visibility timeout, a batch per call. */
  async extend(receiptHandles: string[]): Promise<void> {
    for (let i = 0; i < receiptHandles.length; i += SQS_MAX_BATCH) {
      const batch = receiptHandles.slice(i, i + SQS_MAX_BATCH);
      try {
        this.opts.events?.emit('sqsRequest', 'ChangeMessageVisibilityBatch');
        await withTimeout(
          'sqs extend visibility',
          this.opts.timeoutMs,
          this.opts.sqs.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: this.opts.queueUrl,
              Entries: batch.map((h, j) => ({ Id: String(j), ReceiptHandle: h, VisibilityTimeout: this.opts.visibilityTimeoutS })),
            }),
          ),
        );
      } catch (err) {
        this.opts.events?.emit('sqsError', 'extend_visibility');
        this.opts.log.warn({ tag: 'SQS', err, messages: batch.length }, 'visibility extension failed');
      }
    }
  }

  /** The queue's redrive policy's maxReceiveCount, or undefined without one. */
  async maxReceiveCount(): Promise<number | undefined> {
    try {
      this.opts.events?.emit('sqsRequest', 'GetQueueAttributes');
      const res = await withTimeout(
        'sqs get queue attributes',
        this.opts.timeoutMs,
        this.opts.sqs.send(new GetQueueAttributesCommand({ QueueUrl: this.opts.queueUrl, AttributeNames: ['RedrivePolicy'] })),
      );
      const raw = res.Attributes?.RedrivePolicy;
      if (!raw) {
        this.opts.log.warn({ tag: 'SQS' }, 'queue has no redrive policy: transient failures retry until the message expires');
        return undefined;
      }
      const n = Number((JSON.parse(raw) as { maxReceiveCount?: unknown }).maxReceiveCount);
      return Number.isFinite(n) ? n : undefined;
    } catch (err) {
      this.opts.log.warn({ tag: 'SQS', err }, 'redrive policy unreadable; set NANOGRID_MAX_RECEIVE_COUNT');
      return undefined;
    }
  }
}
