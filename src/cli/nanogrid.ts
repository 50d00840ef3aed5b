#!/usr/bin/env node
/**
 * `nanogrid`: the operator's command line. Invokes a function (a folder, a zip or inline
 * code, with inputData) through the real queue and waits for its result on Redis; reads a
 * stored result; shows an agent's status and drains it. AWS calls use the SDK's default
 * credential chain and region; AWS_ENDPOINT_URL (or --endpoint) points them at the
 * embedded stack, whose S3 and SQS take any key.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import { createHash, randomUUID } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import type { Result } from '../core/result.js';
import { buildZip, type ZipFiles } from '../local/client.js';
import { parseMessageKeys, signMessage } from '../intake/messageAuth.js';
import { resultChannel, resultKey } from '../sinks/redisKeys.js';
import { loadCliEnv } from '../config.js';
import { readStackFile } from '../local/stackFile.js';

/** The environment, read once (config.ts reads every variable). */
const ENV = loadCliEnv();

const USAGE = `usage:
  nanogrid invoke <folder | file.zip> --function ID [--runtime python|cpp|node] [--input JSON | --input @file.json]
                  [--memory MB] [--timeout MS] [--no-wait]
  nanogrid invoke --code 'print("hi")' --function ID ...
  nanogrid result <requestId>
  nanogrid status [--url http://127.0.0.1:8080]
  nanogrid drain  [--url http://127.0.0.1:8080]     (NANOGRID_ADMIN_TOKEN is sent when set)
  nanogrid undrain [--url http://127.0.0.1:8080]    undoes a drain started over HTTP

  --queue URL     (SQS_QUEUE_URL)       --bucket NAME   (S3_CODE_BUCKET, its first bucket)
  --redis URL     (REDIS_URL, or REDIS_HOST and REDIS_PORT)
  --endpoint URL  (AWS_ENDPOINT_URL: the embedded stack, LocalStack, ...)
  --local         the embedded stack of npm run local on this machine: its queue, bucket,
                  Redis and endpoint (NANOGRID_LOCAL_STACK_FILE says where it keeps them)
  --wait-ms N     how long invoke waits for the result (default 120000)
  NANOGRID_MESSAGE_KEYS set: invoke signs the message with its first key`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const { values: o, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      function: { type: 'string' },
      runtime: { type: 'string', default: 'python' },
      input: { type: 'string' },
      code: { type: 'string' },
      memory: { type: 'string' },
      timeout: { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
      'wait-ms': { type: 'string', default: '120000' },
      queue: { type: 'string' },
      bucket: { type: 'string' },
      redis: { type: 'string' },
      endpoint: { type: 'string' },
      local: { type: 'boolean', default: false },
      url: { type: 'string', default: ENV.agentUrl },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, arg] = positionals;
  if (o.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || o.help ? 0 : 2;
  }
  // --local: the embedded stack `npm run local` started on this machine (flags still win).
  const local = o.local ? await readStackFile(ENV.localStackFile) : undefined;
  const endpoint = o.endpoint ?? local?.endpoint ?? ENV.endpoint;
  const redisUrl = o.redis ?? local?.redisUrl ?? ENV.redisUrl;
  if (local) {
    o.queue ??= local.queueUrl;
    o.bucket ??= local.bucket;
  }
  switch (command) {
    case 'invoke':
      return invoke(arg, { ...o, endpoint, redisUrl });
    case 'result': {
      if (!arg) throw new UsageError('result needs a request id');
      const r = await readResult(need(redisUrl, '--redis or REDIS_URL'), arg);
      if (!r) {
        process.stderr.write(`no result stored for ${arg}\n`);
        return 1;
      }
      print(r);
      return r.success ? 0 : 1;
    }
    case 'status':
      print(await http(`${o.url}/status`, 'GET'));
      return 0;
    case 'drain':
      print(await http(`${o.url}/drain`, 'POST'));
      return 0;
    case 'undrain':
      print(await http(`${o.url}/drain`, 'DELETE'));
      return 0;
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

async function invoke(
  source: string | undefined,
  o: { function?: string; runtime: string; input?: string; code?: string; memory?: string; timeout?: string; 'no-wait': boolean; 'wait-ms': string; queue?: string; bucket?: string; endpoint?: string; redisUrl?: string },
): Promise<number> {
  const functionId = need(o.function, '--function');
  const queueUrl = need(o.queue ?? ENV.queueUrl, '--queue or SQS_QUEUE_URL');
  const requestId = randomUUID();
  const message: Record<string, unknown> = { requestId, functionId, runtime: o.runtime };
  if (o.memory) message.memoryMb = Number(o.memory);
  if (o.timeout) message.timeoutMs = Number(o.timeout);
  if (o.input !== undefined) message.inputData = JSON.parse(o.input.startsWith('@') ? await readFile(o.input.slice(1), 'utf8') : o.input);
  // The embedded stack takes any key; elsewhere the SDK's own chain finds them.
  const aws = { endpoint: o.endpoint, ...(o.endpoint && !ENV.hasAccessKey ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, region: ENV.region } : {}) };

  if (o.code !== undefined) {
    // The original's inline format.
    Object.assign(message, { job_id: requestId, function_id: functionId, code: o.code });
    delete message.requestId;
    delete message.functionId;
  } else {
    const zip = await zipOf(need(source, 'a folder or a zip (or --code)'));
    const bucket = need(o.bucket ?? ENV.codeBucket, '--bucket or S3_CODE_BUCKET');
    const key = `${functionId}/${createHash('sha256').update(zip).digest('hex').slice(0, 16)}.zip`;
    const s3 = new S3Client({ ...aws, forcePathStyle: Boolean(o.endpoint) });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: zip }));
    s3.destroy();
    Object.assign(message, { s3Bucket: bucket, s3Key: key });
  }

  let sub: Redis | undefined;
  let heard: Promise<Result> | undefined;
  if (!o['no-wait']) {
    // Subscribe before sending: a fast result is not missed.
    sub = new Redis(need(o.redisUrl, '--redis or REDIS_URL (or --no-wait)'), { maxRetriesPerRequest: 2 });
    await sub.subscribe(resultChannel(requestId));
    heard = new Promise((resolve) => sub!.on('message', (_c: string, payload: string) => resolve(JSON.parse(payload) as Result)));
  }
  try {
    const sqs = new SQSClient(aws);
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(signed(message)) }));
    sqs.destroy();
    process.stderr.write(`sent ${requestId}\n`);
    if (!heard) {
      print({ requestId });
      return 0;
    }
    const waitMs = Number(o['wait-ms']);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), waitMs)));
    // The result may also have been stored before the subscription heard it.
    const r = (await Promise.race([heard, timeout, readResult(o.redisUrl!, requestId).then((x) => x ?? heard)])) as Result | undefined;
    clearTimeout(timer);
    if (!r) {
      process.stderr.write(`no result within ${waitMs} ms; later: nanogrid result ${requestId}\n`);
      return 1;
    }
    print(r);
    return r.success ? 0 : 1;
  } finally {
    sub?.disconnect();
  }
}

/** A zip as is, or a folder zipped (files only, modes kept). */
async function zipOf(path: string): Promise<Buffer> {
  const st = await stat(path);
  if (st.isFile()) return readFile(path);
  const files: ZipFiles = {};
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile()) files[relative(path, full)] = { content: await readFile(full), mode: 0o100000 | ((await stat(full)).mode & 0o777) };
    }
  };
  await walk(path);
  if (Object.keys(files).length === 0) throw new UsageError(`${path} has no files`);
  return buildZip(files);
}

async function readResult(redisUrl: string, requestId: string): Promise<Result | undefined> {
  const r = new Redis(redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  try {
    await r.connect();
    const raw = await r.get(resultKey(requestId));
    return raw ? (JSON.parse(raw) as Result) : undefined;
  } finally {
    r.disconnect();
  }
}

/** With NANOGRID_MESSAGE_KEYS, the message signed with its first key (workers with keys run only signed ones). */
function signed(message: Record<string, unknown>): Record<string, unknown> {
  const raw = ENV.messageKeys;
  if (!raw) return message;
  const keys = parseMessageKeys(raw);
  if ('error' in keys) throw new UsageError(`NANOGRID_MESSAGE_KEYS: ${keys.error}`);
  return signMessage(message, keys.keys[0]!, { lifetimeMs: 3_600_000 });
}

async function http(url: string, method: 'GET' | 'POST' | 'DELETE'): Promise<unknown> {
  const token = ENV.adminToken;
  const headers = method !== 'GET' && token ? { authorization: `Bearer ${token}` } : undefined;
  const res = await fetch(url, { method, headers, signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as unknown;
  if (!res.ok) throw new Error(`${method} ${url}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined || v === '') throw new UsageError(`missing ${what}`);
  return v;
}

const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`nanogrid: ${err instanceof Error ? err.message : String(err)}\n`);
    if (err instanceof UsageError) process.stderr.write(`${USAGE}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
