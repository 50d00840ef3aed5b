import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import type Docker from 'dockerode';
import { Backoff } from '../core/backoff.js';
import { sleep, withTimeout } from '../core/timeout.js';
import type { Logger } from '../core/log.js';

export type PullPolicy = 'never' | 'missing' | 'always';

/** The registry host of an image name, or undefined for Docker Hub style names. */
export function registryOf(image: string): string | undefined {
  const first = image.split('/')[0]!;
  return image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : undefined;
}

/** ECR's registry hosts: `<account>.dkr.ecr.<region>.amazonaws.com`. */
export function ecrRegion(registry: string | undefined): string | undefined {
  return registry ? /^\d{12}\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/.exec(registry)?.[1] : undefined;
}

/**
 * Makes each runtime image present before the agent reports ready: pulled from the
 * registry its name gives (production names are configuration), with ECR's token when the
 * registry is ECR (dockerd does not use the CLI's credential helpers). Bounded, and retried
 * with jitter; a failure names the image and the registry.
 */
export async function ensureImages(
  docker: Docker,
  images: string[],
  opts: { policy: PullPolicy; timeoutMs: number; log: Logger; tries?: number; credentials?: { accessKeyId: string; secretAccessKey: string } },
): Promise<void> {
  for (const image of images) {
    const present = await withTimeout('docker image inspect', 10_000, docker.getImage(image).inspect()).then(
      () => true,
      () => false,
    );
    if (present && opts.policy !== 'always') continue;
    if (opts.policy === 'never') {
      throw new Error(`image ${image} is missing: build it with "npm run setup", or set NANOGRID_IMAGE_PULL=missing to pull it from its registry`);
    }
    const registry = registryOf(image) ?? 'docker.io';
    const backoff = new Backoff(1000, 30_000);
    const tries = opts.tries ?? 3;
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      try {
        opts.log.info({ tag: 'DOCKER', image, registry, attempt }, 'pulling runtime image');
        const auth = await ecrAuth(registry, opts.credentials);
        await withTimeout('docker pull', opts.timeoutMs, pull(docker, image, auth));
        opts.log.info({ tag: 'DOCKER', image, ms: Date.now() - started }, 'runtime image pulled');
        break;
      } catch (err) {
        if (attempt >= tries) {
          if (present) {
            opts.log.warn({ tag: 'DOCKER', image, err, reason: 'IMAGE_PULL_FAILED' }, 'pull failed: keeping the image present');
            break;
          }
          throw new Error(`image ${image} could not be pulled from ${registry} after ${attempt} tries: ${String(err)}`, { cause: err });
        }
        const waitMs = backoff.next();
        opts.log.warn({ tag: 'DOCKER', image, err, retryInMs: waitMs, reason: 'IMAGE_PULL_FAILED' }, 'pull failed; retrying');
        await sleep(waitMs);
      }
    }
  }
}

async function ecrAuth(registry: string, credentials?: { accessKeyId: string; secretAccessKey: string }): Promise<Docker.AuthConfig | undefined> {
  const region = ecrRegion(registry);
  if (!region) return undefined;
  const ecr = new ECRClient({ region, credentials, maxAttempts: 3 });
  try {
    const out = await ecr.send(new GetAuthorizationTokenCommand({}), { abortSignal: AbortSignal.timeout(10_000) });
    const token = out.authorizationData?.[0]?.authorizationToken;
    if (!token) throw new Error('ECR gave no authorization token');
    const [username, password] = Buffer.from(token, 'base64').toString().split(':');
    return { username: username!, password: password!, serveraddress: `https://${registry}` };
  } finally {
    ecr.destroy();
  }
}

function pull(docker: Docker, image: string, authconfig: Docker.AuthConfig | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    docker.pull(image, authconfig ? { authconfig } : {}, (err: Error | null, stream?: NodeJS.ReadableStream) => {
      if (err || !stream) return reject(err ?? new Error('no pull stream'));
      // The pull's errors arrive in the progress stream, not as an HTTP status.
      docker.modem.followProgress(stream, (done: Error | null, events: Array<{ error?: string }>) => {
        const failed = events?.find((e) => e.error);
        if (done || failed) reject(done ?? new Error(failed!.error));
        else resolve();
      });
    });
  });
}
