import { SQSClient } from '@aws-sdk/client-sqs';
import { readFile } from 'node:fs/promises';
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

/**
 * Whether this host is an EC2 instance, read from the firmware tables (no packet sent):
 * Nitro instances name their vendor "Amazon EC2" and carry the instance id as the board's
 * asset tag; Xen instances have a hypervisor UUID starting with "ec2". Off EC2 the metadata
 * address is never asked.
 */
export async function onEc2(sys = '/sys'): Promise<boolean> {
  const read = (f: string) => readFile(`${sys}/${f}`, 'utf8').then((s) => s.trim(), () => '');
  const [vendor, tag, uuid] = await Promise.all([read('devices/virtual/dmi/id/sys_vendor'), read('devices/virtual/dmi/id/board_asset_tag'), read('hypervisor/uuid')]);
  return vendor === 'Amazon EC2' || /^i-[0-9a-f]{8,}$/.test(tag) || /^ec2/i.test(uuid);
}
