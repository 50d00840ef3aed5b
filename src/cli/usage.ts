/** A mistake in how the CLI was called: exit 2, with the usage. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = `usage:
  nanogrid init <folder> [--runtime python|node|cpp]   a function to start from
  nanogrid invoke <folder | file.zip> [--function ID (the folder's name)] [--runtime python|cpp|node] [--input JSON | --input @file.json | --input -]
                  [--memory MB] [--timeout MS] [--no-wait] [--json]
  nanogrid invoke --code 'print("hi")' --function ID ...
  nanogrid result <requestId> [--json]    its result, or the state of a job still running
  nanogrid status [--url http://127.0.0.1:8080] [--json]
  nanogrid drain  [--url http://127.0.0.1:8080]     (NANOGRID_ADMIN_TOKEN is sent when set)
  nanogrid undrain [--url http://127.0.0.1:8080]    undoes a drain started over HTTP
  nanogrid --version

  --queue URL     (SQS_QUEUE_URL)       --bucket NAME   (S3_CODE_BUCKET, its first bucket)
  --redis URL     (REDIS_URL, or REDIS_HOST and REDIS_PORT)
  --endpoint URL  (AWS_ENDPOINT_URL: the embedded stack, LocalStack, ...)
  --local         the embedded stack of npm run local on this machine: its queue, bucket,
                  Redis and endpoint (NANOGRID_LOCAL_STACK_FILE says where it keeps them);
                  one still starting is waited for (NANOGRID_LOCAL_WAIT_S, 120)
  --wait-ms N     how long invoke waits for the result (default 120000)
  --input -       the input (JSON) from stdin
  --json          the result (or status) as JSON, not the summary
  NANOGRID_MESSAGE_KEYS set: invoke signs the message with its first key

exit status: 0 SUCCESS (or the command did what it says), 1 a failed result or an error on
the way, 2 a usage error, 3 no result yet (the job is PENDING or PROCESSING)`;

export function need<T>(v: T | undefined, what: string): T {
  if (v === undefined || v === '') throw new UsageError(`missing ${what}`);
  return v;
}

/** A whole number option, or a usage error naming it. */
export function wholeNumber(raw: string | undefined, option: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,9}$/.test(raw.trim())) throw new UsageError(`${option} must be a whole number, not ${JSON.stringify(raw.slice(0, 40))}`);
  return Number(raw);
}
