import type Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { LABEL_AGENT } from '../core/sandbox.js';
import { withTimeout } from '../core/timeout.js';
import type { Logger } from '../core/log.js';

const exec = promisify(execFile);

/** The instance metadata service: named in a rule of its own, so an operator can see it is closed. */
export const METADATA_ADDRESS = '169.254.169.254';

export interface AiEndpoint {
  url: string;
  address: string;
  port: number;
}

/** AI_ENDPOINT (a URL) -> the one address and TCP port functions may reach. */
export async function resolveAiEndpoint(url: string): Promise<AiEndpoint> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 11434;
  const address = isIP(host) ? host : (await lookup(host, { family: 4 })).address;
  if (isIP(address) !== 4) throw new Error(`AI_ENDPOINT ${url}: only IPv4 is supported`);
  return { url, address, port };
}

/** The names one agent's egress uses: its Docker network, bridge and iptables chains. */
export function egressNames(agentId: string): { network: string; bridge: string; forward: string; input: string } {
  const h = createHash('sha256').update(agentId).digest('hex').slice(0, 8);
  return { network: `nanogrid-ai-${agentId}`, bridge: `ngai${h}`, forward: `NG-AI-${h}`, input: `NG-AI-IN-${h}` };
}

/**
 * Functions on a worker with an AI node may reach exactly that address and port over TCP,
 * and nothing else. The agent gives its containers a Docker network of its own (no traffic
 * between containers) and enforces the rest on the host with iptables: in DOCKER-USER
 * (what the containers send on through the host) only the AI node's port passes; in INPUT
 * (what they send to the worker itself) nothing does. The rules are installed at start and
 * removed at stop; a killed agent's are replaced at its next start.
 */
export class AiEgress {
  readonly names: ReturnType<typeof egressNames>;

  constructor(
    private readonly docker: Docker,
    private readonly opts: { agentId: string; endpoint: AiEndpoint; log: Logger; timeoutMs: number },
  ) {
    this.names = egressNames(opts.agentId);
  }

  get network(): string {
    return this.names.network;
  }

  async start(): Promise<void> {
    await this.removeRules();
    await this.removeNetwork();
    await withTimeout(
      'docker network create',
      this.opts.timeoutMs,
      this.docker.createNetwork({
        Name: this.names.network,
        Driver: 'bridge',
        Labels: { [LABEL_AGENT]: this.opts.agentId },
        Options: { 'com.docker.network.bridge.name': this.names.bridge, 'com.docker.network.bridge.enable_icc': 'false' },
      }),
    );
    await this.installRules();
    this.opts.log.info({ tag: 'AI', endpoint: this.opts.endpoint.url, address: this.opts.endpoint.address, port: this.opts.endpoint.port, network: this.names.network }, 'AI node egress installed');
  }

  async stop(): Promise<void> {
    await this.removeRules().catch((err: unknown) => this.opts.log.warn({ tag: 'AI', err }, 'egress rules not removed'));
    await this.removeNetwork().catch((err: unknown) => this.opts.log.warn({ tag: 'AI', err }, 'egress network not removed'));
  }

  /** The installed rules, as `iptables -S` prints them (for checks: never by sending a packet). */
  async rules(): Promise<{ forward: string[]; input: string[] }> {
    const list = async (chain: string) => (await iptables(['-S', chain])).split('\n').filter(Boolean);
    return { forward: await list(this.names.forward), input: await list(this.names.input) };
  }

  private async installRules(): Promise<void> {
    const { forward, input, bridge } = this.names;
    const { address, port } = this.opts.endpoint;
    await iptables(['-N', forward]);
    // Replies to what was let through, the AI node's port, and nothing else.
    await iptables(['-A', forward, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'RETURN']);
    await iptables(['-A', forward, '-d', `${METADATA_ADDRESS}/32`, '-j', 'DROP']);
    await iptables(['-A', forward, '-p', 'tcp', '-d', `${address}/32`, '--dport', String(port), '-j', 'RETURN']);
    await iptables(['-A', forward, '-j', 'DROP']);
    await iptables(['-I', 'DOCKER-USER', '1', '-i', bridge, '-j', forward]);
    await iptables(['-N', input]);
    await iptables(['-A', input, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT']);
    // The AI node may be on this worker itself.
    await iptables(['-A', input, '-p', 'tcp', '-d', `${address}/32`, '--dport', String(port), '-j', 'ACCEPT']);
    await iptables(['-A', input, '-j', 'DROP']);
    await iptables(['-I', 'INPUT', '1', '-i', bridge, '-j', input]);
  }

  private async removeRules(): Promise<void> {
    const { forward, input, bridge } = this.names;
    for (const [parent, chain] of [
      ['DOCKER-USER', forward],
      ['INPUT', input],
    ] as const) {
      // Every jump (a killed agent may have left more than one), then the chain.
      while (await iptables(['-D', parent, '-i', bridge, '-j', chain]).then(() => true, () => false)) {
        /* removed one */
      }
      if (await iptables(['-F', chain]).then(() => true, () => false)) await iptables(['-X', chain]);
    }
  }

  private async removeNetwork(): Promise<void> {
    const found = await withTimeout('docker network list', this.opts.timeoutMs, this.docker.listNetworks({ filters: { name: [this.names.network] } }));
    for (const n of found.filter((x) => x.Name === this.names.network)) {
      await withTimeout('docker network remove', this.opts.timeoutMs, this.docker.getNetwork(n.Id).remove());
    }
  }
}

async function iptables(args: string[]): Promise<string> {
  // -w: wait for the xtables lock dockerd may hold.
  const { stdout } = await exec('iptables', ['-w', '5', ...args], { timeout: 10_000 });
  return stdout;
}
