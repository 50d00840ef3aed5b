import { MetadataService } from '@aws-sdk/ec2-metadata-service';

/**
 * The instance metadata service, IMDSv2 only (a session token on every request; the
 * launch template requires tokens with a hop limit of 1, so containers cannot reach it).
 * The SDK's MetadataService does the token dance; this adds "absent" for a 404, which is
 * how IMDS says "no Spot notice" or "no such tag".
 */
export class Imds {
  private readonly service: MetadataService;

  constructor(opts: { endpoint?: string; timeoutMs?: number } = {}) {
    this.service = new MetadataService({
      endpoint: opts.endpoint,
      ec2MetadataV1Disabled: true,
      httpOptions: { timeout: opts.timeoutMs ?? 2000 },
      // One quick retry: callers poll, and their own loops back off.
      retries: 1,
      backoff: () => 0.1 + Math.random() * 0.2,
    });
  }

  /** A path under /latest/meta-data/, or null when IMDS answers 404. */
  async get(path: string): Promise<string | null> {
    try {
      // The service prefixes the endpoint's path ("/"): a leading slash here would double it.
      return await this.service.request(`latest/meta-data/${path}`, {});
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
      throw err;
    }
  }
}
