import { SQSClient } from '@aws-sdk/client-sqs';
import type { Imds } from './imds.js';

/**
 * The region by the SDK's own chain: AWS_REGION, then the shared config's profile (the
 * client's own resolver), then the instance metadata, which the JavaScript SDK's chain
 * leaves out unlike the CLI's. No default: a worker in the wrong region would poll a
 * queue that is not there.
 */
export async function resolveRegion(opts: { imds?: Imds } = {}): Promise<string> {
  const probe = new SQSClient({});
  const fromChain = await probe.config.region().catch(() => undefined);
  probe.destroy();
  if (fromChain) return fromChain;
  const tried = ['AWS_REGION', 'the shared config profile'];
  if (opts.imds) {
    try {
      const fromImds = await opts.imds.get('placement/region');
      if (fromImds?.trim()) return fromImds.trim();
      tried.push('instance metadata (no region)');
    } catch (err) {
      tried.push(`instance metadata (${String(err)})`);
    }
  }
  throw new Error(`no AWS region: tried ${tried.join(', ')}; set AWS_REGION`);
}
