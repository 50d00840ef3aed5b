import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import { shipFunctionOutput } from '../sinks/functionOutput.js';
import { LogShipper } from '../sinks/logShipper.js';

const TIMEOUT_MS = 10_000;

/** What of the agent's configuration (config.ts) the shippers read. */
interface Config {
  region?: string | undefined;
  endpoints: { logs: string | undefined; generic: string | undefined };
  logShipping: { group: string | undefined; functionGroup: string | undefined; stream: string; flushMs: number };
}

type Credentials = { accessKeyId: string; secretAccessKey: string } | undefined;

/**
 * The client both shippers send with, or undefined (with the reason) where the agent's
 * endpoints say no CloudWatch Logs is there: a generic AWS_ENDPOINT_URL (fauxqs, ElasticMQ)
 * rarely speaks it, so it needs AWS_ENDPOINT_URL_CLOUDWATCH_LOGS, as CloudWatch does.
 */
export function logsClient(c: Config, credentials: Credentials): CloudWatchLogsClient | { off: string } {
  if (!c.endpoints.logs && c.endpoints.generic) return { off: 'AWS_ENDPOINT_URL is set and AWS_ENDPOINT_URL_CLOUDWATCH_LOGS is not' };
  return new CloudWatchLogsClient({
    region: c.region,
    endpoint: c.endpoints.logs,
    credentials,
    // The SDK's standard retries: exponential backoff with full jitter.
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: TIMEOUT_MS }),
  });
}

/** The agent's own lines, buffered from its first line on; sending starts once the region is known. */
export function agentLogShipper(c: Config): LogShipper | undefined {
  const s = c.logShipping;
  return s.group ? new LogShipper({ group: s.group, stream: s.stream, flushMs: s.flushMs, timeoutMs: TIMEOUT_MS }) : undefined;
}

/** Starts the agent's shipper, or says once why its lines stay in journald only. */
export function startAgentLogShipper(shipper: LogShipper | undefined, c: Config, credentials: Credentials, log: Logger): void {
  if (!shipper) return;
  const client = logsClient(c, credentials);
  if ('off' in client) {
    log.warn({ tag: 'LOGS', group: c.logShipping.group }, `NANOGRID_LOG_GROUP is set but lines are not shipped: ${client.off}`);
    // Closed, it takes no more lines: nothing piles up for a send that never comes.
    void shipper.close();
    return;
  }
  shipper.start(client, log);
  log.info({ tag: 'LOGS', group: c.logShipping.group, stream: c.logShipping.stream, flushMs: c.logShipping.flushMs }, 'agent lines shipped to CloudWatch Logs');
}

/** Each run's stdout and stderr to the function-output group, when NANOGRID_FUNCTION_LOG_GROUP names one. */
export function functionOutputShipper(c: Config, credentials: Credentials, log: Logger, bus: EventBus): LogShipper | undefined {
  const s = c.logShipping;
  if (!s.functionGroup) return undefined;
  const client = logsClient(c, credentials);
  if ('off' in client) {
    log.warn({ tag: 'LOGS', group: s.functionGroup }, `NANOGRID_FUNCTION_LOG_GROUP is set but function output is not shipped: ${client.off}`);
    return undefined;
  }
  const shipper = new LogShipper({ group: s.functionGroup, stream: s.stream, flushMs: s.flushMs, timeoutMs: TIMEOUT_MS, events: bus });
  bus.on('ran', (r) => shipFunctionOutput(shipper, r));
  shipper.start(client, log);
  return shipper;
}
