import type { Result } from './result.js';

/**
 * A Result's size is counted as it is delivered: its JSON text in UTF-8 bytes. What a
 * function writes is hostile there too: each control byte of its stdout is six bytes of
 * JSON ("\u0001"), so a 1 MiB output limit alone would let one run store 6 MiB per stream.
 * Past the budget, stdout and stderr are cut (each keeps at least an even share of the
 * room; what one does not need goes to the other) and marked as any truncated stream is:
 * `stdoutTruncated` / `stderrTruncated` true. Where the runner kept a stream whole
 * (NANOGRID_OUTPUT_SPOOL_BYTES, with a user-data bucket), all of it is in the outputs.
 * The list of stored outputs is cut last, with a line in outputErrors saying how many
 * were not listed.
 */
export const MIN_RESULT_BYTES = 16 * 1024;

/** `result` as it will be delivered within `maxBytes`, and its JSON text. */
export function fitResult(result: Result, maxBytes: number): { result: Result; json: string } {
  const json = JSON.stringify(result);
  if (json.length <= maxBytes / 3 || Buffer.byteLength(json) <= maxBytes) return { result, json };
  let r: Result = { ...result, stdout: '', stderr: '' };
  let base = Buffer.byteLength(JSON.stringify(r));
  // A handler's return value cannot be cut and stay JSON: past the budget it goes whole.
  if (base > maxBytes && r.handler && r.handler.returnValue !== null) {
    r = { ...r, handler: { ...r.handler, returnValue: null, returnValueDropped: true } };
    base = Buffer.byteLength(JSON.stringify(r));
  }
  if (base > maxBytes) {
    r = cutOutputs(r, maxBytes);
    base = Buffer.byteLength(JSON.stringify(r));
  }
  // Room for the two strings' contents (their quotes are counted in base already).
  const room = Math.max(0, maxBytes - base);
  const outCost = escapedBytes(result.stdout);
  const errCost = escapedBytes(result.stderr);
  let outRoom = Math.floor(room / 2);
  let errRoom = room - outRoom;
  if (outCost < outRoom) errRoom += outRoom - outCost;
  else if (errCost < errRoom) outRoom += errRoom - errCost;
  const stdout = cutEscaped(result.stdout, outRoom);
  const stderr = cutEscaped(result.stderr, errRoom);
  r = {
    ...r,
    stdout,
    stderr,
    stdoutTruncated: result.stdoutTruncated || stdout.length < result.stdout.length,
    stderrTruncated: result.stderrTruncated || stderr.length < result.stderr.length,
  };
  return { result: r, json: JSON.stringify(r) };
}

/** Keeps the outputs list within the budget, saying how many were left out. */
function cutOutputs(r: Result, maxBytes: number): Result {
  const listed = [...r.outputs];
  const errors = [...r.outputErrors];
  let dropped = 0;
  const note = () => `${dropped} stored outputs are not listed here (the result would pass its ${maxBytes} byte budget); they are under ${r.functionId}/${r.requestId}/`;
  let cut: Result = r;
  // Halving first, then one by one: a list of thousands fits in a few steps.
  while (listed.length > 0) {
    cut = { ...r, outputs: listed, outputErrors: dropped ? [...errors, note()] : errors };
    const size = Buffer.byteLength(JSON.stringify(cut));
    if (size <= maxBytes) return cut;
    const n = size > 2 * maxBytes ? Math.ceil(listed.length / 2) : 1;
    listed.splice(listed.length - n, n);
    dropped += n;
  }
  return { ...r, outputs: [], outputErrors: [...errors.slice(0, 5), note()] };
}

/** Bytes a code unit takes inside a JSON string (the UTF-8 of JSON.stringify's escaping). */
function unitCost(s: string, i: number): { bytes: number; units: number } {
  const c = s.charCodeAt(i);
  if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x0c || c === 0x0a || c === 0x0d || c === 0x09) return { bytes: 2, units: 1 };
  if (c < 0x20) return { bytes: 6, units: 1 };
  if (c < 0x80) return { bytes: 1, units: 1 };
  if (c < 0x800) return { bytes: 2, units: 1 };
  if (c >= 0xd800 && c <= 0xdbff) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return { bytes: 4, units: 2 };
    return { bytes: 6, units: 1 };
  }
  if (c >= 0xdc00 && c <= 0xdfff) return { bytes: 6, units: 1 };
  return { bytes: 3, units: 1 };
}

export function escapedBytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; ) {
    const u = unitCost(s, i);
    n += u.bytes;
    i += u.units;
  }
  return n;
}

/** The longest prefix of `s` whose JSON escaping fits `bytes`, never splitting a character. */
export function cutEscaped(s: string, bytes: number): string {
  let n = 0;
  let i = 0;
  while (i < s.length) {
    const u = unitCost(s, i);
    if (n + u.bytes > bytes) break;
    n += u.bytes;
    i += u.units;
  }
  return i === s.length ? s : s.slice(0, i);
}
