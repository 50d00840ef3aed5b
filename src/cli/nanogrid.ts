#!/usr/bin/env node
/**
 * `nanogrid`: the operator's command line. Invokes a function (a folder, a zip or inline
 * code, with inputData) through the real queue and waits for its result on Redis; reads a
 * stored result or a running job's state; shows an agent's status and drains it. AWS
 * calls use the SDK's default credential chain and region; AWS_ENDPOINT_URL (or
 * --endpoint) points them at the embedded stack, whose S3 and SQS take any key.
 */
import { parseArgs } from 'node:util';
import { loadCliEnv, type CliEnv } from './cliEnv.js';
import { waitForStackFile } from '../local/stackFile.js';
import { buildVersion } from '../core/version.js';
import { agentHttp } from './agentHttp.js';
import { init } from './initCommand.js';
import { invoke } from './invokeCommand.js';
import { readJob } from './redisRead.js';
import { jobSummary, printValue, resultSummary, statusSummary, type Printer } from './show.js';
import { need, USAGE, UsageError } from './usage.js';

const OPTIONS = {
  function: { type: 'string' },
  runtime: { type: 'string' },
  input: { type: 'string' },
  code: { type: 'string' },
  memory: { type: 'string' },
  timeout: { type: 'string' },
  'no-wait': { type: 'boolean', default: false },
  'wait-ms': { type: 'string' },
  queue: { type: 'string' },
  bucket: { type: 'string' },
  redis: { type: 'string' },
  endpoint: { type: 'string' },
  local: { type: 'boolean', default: false },
  url: { type: 'string' },
  json: { type: 'boolean', default: false },
  version: { type: 'boolean', short: 'v', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    // An unknown option or a missing value: node's message, as a usage error.
    throw new UsageError((err as Error).message);
  }
  const { values: o, positionals } = parsed;
  if (o.version) {
    process.stdout.write(`nanogrid ${buildVersion()}\n`);
    return 0;
  }
  const [command, arg, ...extra] = positionals;
  if (o.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || o.help ? 0 : 2;
  }
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.map((e) => JSON.stringify(e)).join(' ')}`);
  let env: CliEnv;
  try {
    env = loadCliEnv();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const p: Printer = { json: o.json, out: (s) => process.stdout.write(s) };
  if (command === 'init') {
    const made = await init(arg, o.runtime);
    const flag = made.runtime === 'python' ? '' : ` --runtime ${made.runtime}`;
    printValue(p, { folder: arg, ...made }, () => `${arg}: ${made.files.join(', ')} (${made.runtime})\nnext: npm run -s nanogrid -- invoke ${arg}${flag} --local --input '{"who": "you"}'\n`);
    return 0;
  }
  // --local: the embedded stack `npm run local` started on this machine (flags still win);
  // one still starting is waited for a while.
  const local = o.local ? await waitForStackFile(env.localStackFile, env.localWaitMs, (s) => process.stderr.write(`${s}\n`)) : undefined;
  const endpoint = o.endpoint ?? local?.endpoint ?? env.endpoint;
  const redisUrl = o.redis ?? local?.redisUrl ?? env.redisUrl;
  const url = o.url ?? env.agentUrl;
  switch (command) {
    case 'invoke': {
      const out = await invoke(
        arg,
        {
          function: o.function,
          runtime: o.runtime,
          input: o.input,
          code: o.code,
          memory: o.memory,
          timeout: o.timeout,
          noWait: o['no-wait'],
          waitMs: o['wait-ms'],
          queue: o.queue ?? local?.queueUrl,
          bucket: o.bucket ?? local?.bucket,
          endpoint,
          redisUrl,
        },
        env,
        readStdin,
        (s) => process.stderr.write(`${s}\n`),
      );
      if (o['no-wait']) {
        printValue(p, { requestId: out.requestId }, () => `${out.requestId}\n`);
        return 0;
      }
      if (!out.result) {
        process.stderr.write(`no result within ${out.waitedMs} ms; later: nanogrid result ${out.requestId}\n`);
        return 3;
      }
      printValue(p, out.result, () => resultSummary(out.result!));
      return out.result.success ? 0 : 1;
    }
    case 'result': {
      if (!arg) throw new UsageError('result needs a request id');
      const { result, job } = await readJob(need(redisUrl, '--redis or REDIS_URL (or --local)'), arg);
      if (result) {
        printValue(p, result, () => resultSummary(result));
        return result.success ? 0 : 1;
      }
      if (job) {
        printValue(p, { requestId: arg, ...job }, () => jobSummary(arg, job));
        return 3;
      }
      process.stderr.write(`no result or job stored for ${arg} (unknown, or past NANOGRID_RESULT_TTL_SECONDS)\n`);
      return 1;
    }
    case 'status': {
      const s = (await agentHttp(`${url}/status`, 'GET', env.adminToken)) as Parameters<typeof statusSummary>[0];
      printValue(p, s, () => statusSummary(s));
      return 0;
    }
    case 'drain':
    case 'undrain': {
      const body = await agentHttp(`${url}/drain`, command === 'drain' ? 'POST' : 'DELETE', env.adminToken);
      printValue(p, body, () => `${command === 'drain' ? 'draining' : 'drain undone'}: ${JSON.stringify(body)}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('--input - reads JSON from stdin, but stdin is a terminal');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`nanogrid: ${err instanceof Error ? err.message : String(err)}\n`);
    if (err instanceof UsageError) process.stderr.write(`run nanogrid --help for the usage\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
