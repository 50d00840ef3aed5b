import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import type { InputSource } from '../core/invocation.js';
import { InvocationError } from '../core/reasons.js';
import { classifyS3Error } from '../code/codeFetch.js';

export interface InputFetchOptions {
  s3: S3Client;
  s3TimeoutMs: number;
  /** Largest input object by reference (NANOGRID_INPUT_S3_MAX_BYTES). */
  maxBytes: number;
}

/**
 * The bytes of an invocation's input: inline JSON from the message as it is, or an S3
 * object (for inputs over the SQS body limit) read with a size cap, the same way code is.
 */
export class InputFetcher {
  constructor(private readonly opts: InputFetchOptions) {}

  async get(input: InputSource): Promise<Buffer> {
    if (input.kind === 'inline') return Buffer.from(input.json);
    const where = `s3://${input.bucket}/${input.key}`;
    const max = this.opts.maxBytes;
    const tooLarge = (bytes: number | string) =>
      new InvocationError('INVALID_MESSAGE', 'permanent', `the input ${where} is ${bytes} bytes, over the NANOGRID_INPUT_S3_MAX_BYTES limit of ${max}`);
    try {
      const res = await this.opts.s3.send(new GetObjectCommand({ Bucket: input.bucket, Key: input.key }), { abortSignal: AbortSignal.timeout(this.opts.s3TimeoutMs) });
      const body = res.Body as Readable | undefined;
      if (res.ContentLength !== undefined && res.ContentLength > max) {
        body?.destroy();
        throw tooLarge(res.ContentLength);
      }
      if (!body) throw new InvocationError('S3_UNAVAILABLE', 'transient', `${where} returned no body`);
      const chunks: Buffer[] = [];
      let seen = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        seen += chunk.length;
        if (seen > max) {
          body.destroy();
          throw tooLarge(`more than ${max}`);
        }
        chunks.push(chunk);
      }
      return Buffer.concat(chunks);
    } catch (err) {
      throw classifyS3Error(err, `input ${where}`);
    }
  }
}
