import { GetObjectCommand, NoSuchKey, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { SQSClient, SendMessageCommand } from '@aws-sdk/client-sqs';
import Docker from 'dockerode';
import { ReplyError } from 'ioredis';
import t from 'tap';
import { classifyError } from '../../src/core/errorClass.js';
import { TimeoutError } from '../../src/core/timeout.js';

const meta = (httpStatusCode: number) => ({ $metadata: { httpStatusCode, attempts: 1 } });
const awsError = (name: string, status: number, fault: 'client' | 'server') =>
  Object.assign(new S3ServiceException({ name, $fault: fault, ...meta(status), message: name }), {});

// Real errors where the real library can raise them without a network; built ones with
// the libraries' own shapes otherwise.
t.test('AWS: errors the SDK raises before sending are permanent', async (t) => {
  const s3 = new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 });
  for (const [bucket, why] of [
    ['a/b', 'a bucket name with a slash'],
    ['arn:bad', 'a malformed ARN'],
    ['', 'no bucket'],
  ] as const) {
    const err = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k' })).catch((e: unknown) => e);
    const c = classifyError(err);
    t.equal(c.kind, 'permanent', `${why}: ${String(err)} (${c.rule})`);
  }
  s3.destroy();
});

t.test('AWS: by status and name after a response', async (t) => {
  const rows: [unknown, 'transient' | 'permanent'][] = [
    [new NoSuchKey({ message: 'gone', ...meta(404) }), 'permanent'],
    [awsError('AccessDenied', 403, 'client'), 'permanent'],
    [awsError('InvalidBucketName', 400, 'client'), 'permanent'],
    [awsError('InvalidParameterValue', 400, 'client'), 'permanent'],
    [awsError('SlowDown', 503, 'server'), 'transient'],
    [awsError('InternalError', 500, 'server'), 'transient'],
    [awsError('ThrottlingException', 400, 'client'), 'transient'],
    [awsError('RequestTimeTooSkewed', 403, 'client'), 'transient'],
    [awsError('ExpiredToken', 400, 'client'), 'transient'],
    [awsError('Whatever', 429, 'client'), 'transient'],
    [awsError('BadGateway', 502, 'server'), 'transient'],
  ];
  for (const [err, kind] of rows) t.equal(classifyError(err).kind, kind, (err as Error).name);
});

t.test('AWS: a refused connection is transient (real SDK, closed local port)', async (t) => {
  const sqs = new SQSClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 });
  const err = await sqs.send(new SendMessageCommand({ QueueUrl: 'http://127.0.0.1:9/q', MessageBody: 'x' })).catch((e: unknown) => e);
  const c = classifyError(err);
  t.equal(c.kind, 'transient', String(err));
  t.ok(c.unreachable);
  sqs.destroy();
});

t.test('Docker: by the engine status; an engine that is not there is unreachable', async (t) => {
  const gone = new Docker({ socketPath: '/nonexistent/docker.sock' });
  const err = await gone.ping().catch((e: unknown) => e);
  t.same({ kind: classifyError(err).kind, unreachable: classifyError(err).unreachable }, { kind: 'transient', unreachable: true }, String(err));
  const real = new Docker();
  const notFound = await real.getContainer('nanogrid-no-such-container').inspect().catch((e: unknown) => e);
  t.equal(classifyError(notFound).kind, 'permanent', 'no such container (404)');
  const badImage = await real.createContainer({ Image: 'nanogrid/no-such-image:none' }).catch((e: unknown) => e);
  t.equal(classifyError(badImage).kind, 'permanent', `no such image: ${String(badImage)}`);
  t.equal(classifyError(Object.assign(new Error('paused'), { statusCode: 409 })).kind, 'transient', 'a conflict of the moment');
  t.equal(classifyError(Object.assign(new Error('server'), { statusCode: 500 })).kind, 'transient');
});

t.test('Redis: reply errors are permanent but for a server that is busy or loading', async (t) => {
  t.equal(classifyError(new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value')).kind, 'permanent');
  t.equal(classifyError(new ReplyError('ERR unknown command')).kind, 'permanent');
  t.equal(classifyError(new ReplyError('LOADING Redis is loading the dataset in memory')).kind, 'transient');
  t.equal(classifyError(new ReplyError('OOM command not allowed when used memory > maxmemory')).kind, 'transient');
  t.equal(classifyError(Object.assign(new Error('Connection is closed.'), {})).kind, 'transient');
  t.equal(classifyError(Object.assign(new Error('x'), { name: 'MaxRetriesPerRequestError' })).kind, 'transient');
});

t.test('the agent s own bounds, causes and unknowns', async (t) => {
  t.equal(classifyError(new TimeoutError('docker create', 10)).kind, 'transient');
  t.equal(classifyError(new Error('wrapped', { cause: Object.assign(new Error('x'), { statusCode: 404 }) })).kind, 'permanent', 'the cause decides');
  t.equal(classifyError(new Error('who knows')).kind, 'transient');
  t.equal(classifyError('a string').kind, 'transient');
  t.equal(classifyError(Object.assign(new Error('open'), { code: 'ENOENT', syscall: 'open' })).unreachable, false, 'a missing file is not a missing engine');
});
