// The embedded local stack (fauxqs for SQS and S3, a private redis-server) in a process of
// its own, as the queue server is in production: the cost cell measures its CPU apart from
// the agent's. Prints one JSON line with the addresses and the pids, stops on SIGTERM or
// when its parent closes stdin.
import { startLocalStack } from '../src/local/stack.js';

const stack = await startLocalStack();
process.stdout.write(`${JSON.stringify({ endpoint: stack.endpoint, region: stack.region, queueUrl: stack.queueUrl, dlqUrl: stack.dlqUrl, bucket: stack.bucket, redisUrl: stack.redisUrl, maxReceiveCount: stack.maxReceiveCount, pid: process.pid, redisPid: stack.redisPid })}\n`);
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void stack.stop().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
