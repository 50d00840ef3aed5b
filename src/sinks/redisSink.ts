import { Redis } from 'ioredis';
import type { Emitter } from '../core/events.js';
import { ownerOf } from '../core/invocation.js';
import type { Result } from '../core/result.js';
import { fitResult } from '../core/resultBudget.js';
import { classifyError } from '../core/errorClass.js';
import { withTimeout } from '../core/timeout.js';
import type { ClaimOutcome, ResultStore } from '../intake/supervisor.js';
import type { Logger } from '../core/log.js';
import { Outbox, type OutboxLimits } from './outbox.js';
import { jobKey, ownerKey, resultChannel, resultKey } from './redisKeys.js';
import { RedisHealth } from './redisHealth.js';
import type { MemoryHistory } from './memoryHistory.js';
import { functionKey } from '../core/invocation.js';

export type JobState = 'PENDING' | 'PROCESSING' | 'SUCCESS' | 'FAILED';

export interface RedisSinkOptions {
  url: string;
  ttlSeconds: number;
  workerId: string;
  log: Logger;
  timeoutMs?: number;
  /** A result's JSON is kept within this many bytes (core/resultBudget.ts). */
  resultMaxBytes: number;
  /** Undelivered results kept before intake pauses (nothing is dropped). */
  outboxLimits?: OutboxLimits;
  /** Where undelivered results are kept on disk (replayed at start); memory only without it. */
  outboxDir?: string;
  retryEveryMs?: number;
  events?: Emitter<'sinkFailure'>;
}

/**
 * Claims a request id for its owner (function id and code location) and marks the job
 * PROCESSING, atomically: 1 when the id was free or is the owner's already (a redelivery),
 * 0 when another function owns it, 2 when the owner's result is stored already (a
 * duplicate delivery, or a replay of a signed message: not run again). With 1 come the
 * function's recent peaks (its memory history), for the run's advice.
 * KEYS: owner, job, result, history. ARGV: owner, ttl, then field, value pairs for the job hash.
 */
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return {0} end
if cur and redis.call('EXISTS', KEYS[3]) == 1 then return {2} end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {1, redis.call('LRANGE', KEYS[4], 0, -1)}`;

/**
 * Stores, marks and publishes a result unless another function owns its request id (the
 * first writer wins; the same owner may write again: a redelivery finishing the job). A
 * result with no owner (a message refused before its code was known) is written only
 * where nobody owns the id, and claims nothing. With a peak, the run's is added to the
 * function's memory history (the newest `size` kept). 1 written, 0 refused.
 * KEYS: owner, result, job, history. ARGV: owner ('' for none), ttl, payload, peak ('' for
 * none), history size, history ttl, then job hash pairs.
 */
const WRITE = `
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if cur then return 0 end
else
  if cur and cur ~= ARGV[1] then return 0 end
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('RPUSH', KEYS[4], ARGV[4])
  redis.call('LTRIM', KEYS[4], -tonumber(ARGV[5]), -1)
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2])
redis.call('HSET', KEYS[3], unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1`;

type Scripted = Redis & {
  nanogridClaim(owner: string, job: string, result: string, history: string, ...args: (string | number)[]): Promise<[number, string[]?]>;
  nanogridWrite(owner: string, result: string, job: string, history: string, ...args: (string | number)[]): Promise<number>;
};

/** Where a claim reads a function's peaks and a result's write records one (sinks/memoryHistory.ts). */
type HistoryLink = Pick<MemoryHistory, 'keyOf' | 'seed' | 'takePending'>;

/** The history key named in a script call that touches no history (a script must name every key it may touch). */
const NO_HISTORY = 'mem:-';

/**
 * Delivers results: stored under `result:{id}` with a TTL, job state in `job:{id}`, then
 * published on `result:{id}`, in one server-side script so a subscriber who hears the
 * message can also read the key, and so that no run of another function replaces them.
 * A failure never fails the invocation: the result waits in an outbox.
 */
export class RedisSink implements ResultStore {
  readonly redis: Redis;
  private readonly outbox: Outbox;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly timeoutMs: number;
  /** Claims and deliveries do not wait for a Redis that seems down; the outbox takes the results meanwhile. */
  readonly health = new RedisHealth();
  /** Bytes of results being written now: counted with the outbox's for its limit. */
  private writing = 0;
  private history: HistoryLink | undefined;

  constructor(private readonly opts: RedisSinkOptions) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.outbox = new Outbox(opts.outboxDir, opts.outboxLimits ?? { entries: 10_000, bytes: 256 * 1024 * 1024 }, opts.log);
    this.redis = new Redis(opts.url, {
      lazyConnect: true,
      connectTimeout: this.timeoutMs,
      commandTimeout: this.timeoutMs,
      maxRetriesPerRequest: 1,
      // Fail fast while disconnected: the outbox retries, so commands need not pile up.
      enableOfflineQueue: false,
      // Off: at a few commands per tick, auto-pipelining wraps each in a Pipeline of its own,
      // which cost the agent more CPU per invocation than it saved (bench/README.md, cost cell).
      enableAutoPipelining: false,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    this.redis.defineCommand('nanogridClaim', { numberOfKeys: 4, lua: CLAIM });
    this.redis.defineCommand('nanogridWrite', { numberOfKeys: 4, lua: WRITE });
    this.redis.on('error', (err) => opts.log.debug({ tag: 'REDIS', err }, 'redis connection error'));
  }

  /**
   * Reads back what an earlier run left undelivered, starts the retry loop, then connects
   * (a failed connect is thrown, but the loop keeps trying to deliver).
   */
  async connect(): Promise<void> {
    const replayed = await this.outbox.load();
    if (replayed > 0) this.opts.log.warn({ tag: 'REDIS', results: replayed }, 'undelivered results from an earlier run: delivering them');
    this.retryTimer ??= setInterval(() => void this.retryOutbox(), this.opts.retryEveryMs ?? 2000);
    this.retryTimer.unref();
    await withTimeout('redis connect', this.timeoutMs, this.redis.connect());
    await this.retryOutbox();
  }

  /** Claims read, and result writes record, the functions' memory history. */
  useHistory(history: HistoryLink): void {
    this.history = history;
  }

  get pending(): number {
    return this.outbox.size;
  }

  /** The outbox, for /status. */
  get undelivered(): Pick<Outbox, 'full' | 'bytes' | 'size'> {
    return this.outbox;
  }

  async ping(): Promise<boolean> {
    try {
      return (await withTimeout('redis ping', this.timeoutMs, this.redis.ping())) === 'PONG';
    } catch {
      return false;
    }
  }

  /** The stored result of a request, if any (a redelivery checks this before running): in the outbox, else in Redis. */
  async find(requestId: string): Promise<Result | undefined> {
    const waiting = await this.outbox.get(requestId);
    if (waiting) return waiting;
    const raw = await this.redis.get(resultKey(requestId));
    return raw ? (JSON.parse(raw) as Result) : undefined;
  }

  /**
   * Claims the request id for the function (id and code location) and marks it
   * PROCESSING. 'foreign' when another function owns it; 'answered' when its result is
   * stored already; 'unknown' when Redis did not answer (the result's own write checks
   * again, from the outbox if need be).
   */
  async claim(requestId: string, functionId: string, codeLocation: string, fields: Record<string, string | number>, log: Logger): Promise<ClaimOutcome> {
    if (this.health.skip()) return 'unknown';
    try {
      const r = this.redis as Scripted;
      const history = this.history?.keyOf(functionKey(functionId, codeLocation)) ?? NO_HISTORY;
      const [owned, peaks] = await withTimeout(
        'redis claim',
        this.timeoutMs,
        r.nanogridClaim(ownerKey(requestId), jobKey(requestId), resultKey(requestId), history, ownerOf(functionId, codeLocation), this.opts.ttlSeconds, ...this.jobFields('PROCESSING', fields)),
      );
      this.health.ok();
      if (owned === 1 && this.history && Array.isArray(peaks)) this.history.seed(requestId, peaks.map(Number).filter(Number.isFinite));
      return owned === 1 ? 'claimed' : owned === 2 ? 'answered' : 'foreign';
    } catch (err) {
      this.health.failed();
      this.opts.events?.emit('sinkFailure', 'redis', 'claim');
      log.warn({ tag: 'REDIS', requestId, err }, 'request id not claimed (Redis unreachable); the result is checked when it is written');
      return 'unknown';
    }
  }

  /** Best effort: a lost state update is only a stale status. */
  async markState(requestId: string, state: JobState, fields: Record<string, string | number> = {}, log?: Logger): Promise<void> {
    try {
      await this.redis
        .multi()
        .hset(jobKey(requestId), { state, updatedAt: new Date().toISOString(), workerId: this.opts.workerId, ...fields })
        .expire(jobKey(requestId), this.opts.ttlSeconds)
        .exec();
    } catch (err) {
      this.opts.events?.emit('sinkFailure', 'redis', 'state');
      (log ?? this.opts.log).warn({ tag: 'REDIS', requestId, state, err }, 'job state not written');
    }
  }

  /** Returns true when delivered now (or refused for good); false when it waits in the outbox. */
  async deliver(result: Result, log?: Logger): Promise<boolean> {
    const l = log ?? this.opts.log;
    const { result: fitted, json } = fitResult(result, this.opts.resultMaxBytes);
    if (fitted !== result) l.warn({ tag: 'REDIS', bytes: Buffer.byteLength(JSON.stringify(result)), maxBytes: this.opts.resultMaxBytes }, 'result cut to its byte budget');
    const bytes = Buffer.byteLength(json);
    this.writing += bytes;
    try {
      if (this.health.skip()) throw new Error('Redis is down (a call just failed): straight to the outbox');
      const written = await this.write(fitted, json);
      if (written) l.debug({ tag: 'REDIS', channel: resultChannel(result.requestId) }, 'result published');
      else this.refused(fitted, l);
      return true;
    } catch (err) {
      this.opts.events?.emit('sinkFailure', 'redis', 'publish');
      try {
        await this.outbox.put(fitted.requestId, json);
      } catch (diskErr) {
        // The disk refused too: the result stays in memory only (lost if the agent dies now).
        this.opts.events?.emit('sinkFailure', 'redis', 'outbox');
        this.outbox.keepInMemory(fitted.requestId, json);
        l.error({ tag: 'FAIL', reason: 'OUTBOX', err: diskErr }, 'result not written to the outbox on disk');
      }
      l.error({ tag: 'FAIL', reason: 'REDIS', err, outbox: this.outbox.size, durable: this.outbox.durable }, 'result not delivered; kept for retry');
      return false;
    } finally {
      this.writing -= bytes;
    }
  }

  /**
   * Past the outbox's limits, counting the results being written now (a hung Redis holds
   * them in memory until their timeout): intake waits meanwhile.
   */
  get full(): boolean {
    return this.outbox.full || this.outbox.bytes + this.writing >= this.outbox.limits.bytes;
  }

  /** One last attempt for what waits in the outbox, then disconnects. */
  async close(): Promise<void> {
    clearInterval(this.retryTimer);
    await this.retryOutbox();
    if (this.outbox.size > 0) {
      const ids = this.outbox.ids();
      if (this.outbox.durable) this.opts.log.warn({ tag: 'REDIS', kept: ids.slice(0, 100), count: ids.length }, 'results still undelivered at shutdown: kept on disk for the next start');
      else this.opts.log.error({ tag: 'REDIS', lost: ids.slice(0, 100), count: ids.length }, 'results still undelivered at shutdown');
    }
    this.redis.disconnect();
  }

  private refused(r: Result, log: Logger): void {
    log.warn({ tag: 'REDIS', reason: 'FOREIGN_REQUEST_ID' }, `request id ${r.requestId} belongs to another function: this result was neither stored nor published`);
  }

  /**
   * One script call, bounded: ioredis's command timeout is per command, and a server that
   * hangs (not refuses) would hold the message's delete indefinitely. A write that times
   * out may still land later; the outbox then writes the same result again, which is
   * harmless (same key, same payload, same owner).
   */
  private write(result: Result, json: string): Promise<boolean> {
    const owner = result.codeLocation === null ? '' : ownerOf(result.functionId, result.codeLocation);
    const fields = this.jobFields(result.success ? 'SUCCESS' : 'FAILED', { status: result.status, reason: result.reason });
    const r = this.redis as Scripted;
    const id = result.requestId;
    const peak = this.history?.takePending(id);
    const history = peak ? [peak.key, owner, this.opts.ttlSeconds, json, peak.peakBytes, peak.size, peak.ttlSeconds] : [NO_HISTORY, owner, this.opts.ttlSeconds, json, '', 0, 0];
    return withTimeout('redis result write', this.timeoutMs, r.nanogridWrite(ownerKey(id), resultKey(id), jobKey(id), ...(history as [string, ...(string | number)[]]), ...fields)).then(
      (n) => {
        this.health.ok();
        return n === 1;
      },
      (err: unknown) => {
        this.health.failed();
        throw err;
      },
    );
  }

  private jobFields(state: JobState, more: Record<string, string | number>): (string | number)[] {
    const all: Record<string, string | number> = { state, updatedAt: new Date().toISOString(), workerId: this.opts.workerId, ...more };
    return Object.entries(all).flat();
  }

  private retrying = false;
  private async retryOutbox(): Promise<void> {
    if (this.retrying || this.outbox.size === 0) return;
    this.retrying = true;
    try {
      for (const id of this.outbox.ids()) {
        const json = await this.outbox.json(id);
        if (json === undefined) {
          await this.outbox.remove(id);
          continue;
        }
        try {
          const result = JSON.parse(json) as Result;
          // Kept by an earlier version without the field: its function id alone is its owner.
          result.codeLocation ??= null;
          if (!(await this.write(result, json))) this.refused(result, this.opts.log.child({ requestId: id }));
        } catch (err) {
          // Redis refusing this result for good (not down), or a file that is not a result:
          // retrying it forever would block the rest.
          if (err instanceof SyntaxError || classifyError(err).kind === 'permanent') {
            this.opts.log.error({ tag: 'REDIS', requestId: id, err }, 'this result cannot be delivered; dropped from the outbox');
            await this.outbox.remove(id);
            continue;
          }
          return;
        }
        await this.outbox.remove(id);
        this.opts.log.info({ tag: 'REDIS', requestId: id }, 'result delivered from outbox');
      }
    } finally {
      this.retrying = false;
    }
  }
}
