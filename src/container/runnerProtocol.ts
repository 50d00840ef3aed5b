/**
 * The agent <-> runner wire format, mirrored from runner/protocol.h (its one home; a test
 * fails when they disagree): frames of [u32 big-endian length][u8 type][payload]; the
 * length counts the type byte and the payload. Text payloads are NUL-terminated
 * key=value strings; a key may repeat (arg, env).
 */

export interface Frame {
  type: string;
  payload: Buffer;
}

/** The frame letters (protocol.h's FRAME_*). */
export const FRAME = {
  RUN: 'R',
  GO: 'G',
  KILL: 'K',
  PING: 'P',
  ZYGOTE: 'Z',
  HELLO: 'H',
  STARTED: 'S',
  EXIT: 'E',
  STDOUT: 'o',
  STDERR: 'e',
  RETURN: 'r',
  DONE: 'D',
  FAILED: 'F',
  PONG: 'p',
} as const;

/** protocol.h's FRAME_MAX: the longest frame either side accepts. */
export const MAX_FRAME = 4 * 1024 * 1024;

export function encodeFrame(type: string, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + 1, 0);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, payload]);
}

/** key=value pairs, in order; repeated keys are kept. */
export function encodeFields(fields: Array<[string, string | number]>): Buffer {
  for (const [k, v] of fields) {
    if (String(v).includes('\0') || k.includes('\0') || k.includes('=')) throw new Error(`field ${k} cannot carry a NUL byte`);
  }
  return Buffer.from(fields.map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
}

export function decodeFields(payload: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of payload.toString('utf8').split('\0')) {
    const eq = item.indexOf('=');
    if (eq > 0) out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** Splits a byte stream into frames; throws on a frame longer than the runner ever sends. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Frame[] = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(0);
      if (len < 1 || len > MAX_FRAME) throw new Error(`runner sent a frame of ${len} bytes`);
      if (this.buf.length < 4 + len) break;
      frames.push({ type: String.fromCharCode(this.buf[4]!), payload: this.buf.subarray(5, 4 + len) });
      this.buf = this.buf.subarray(4 + len);
    }
    return frames;
  }
}
