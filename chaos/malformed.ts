/**
 * `n` message bodies that are not valid invocations, of every kind the parser must refuse
 * without crashing, retrying or dead-lettering: not JSON, the wrong JSON, missing or
 * mistyped fields, values out of range, hostile strings, and large bodies.
 */
export function MALFORMED(n: number, bucket: string): string[] {
  const base = { functionId: 'junk', runtime: 'python', s3Bucket: bucket, s3Key: 'junk/v1.zip' };
  const makers: ((i: number) => string)[] = [
    () => ' ',
    () => 'not json at all',
    () => '{"unterminated": ',
    () => 'null',
    () => '42',
    () => '[1,2,3]',
    () => '"a string"',
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}`, runtime: 'cobol' }),
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}`, timeoutMs: -5 }),
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}`, memoryMb: 1e12 }),
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}`, s3Bucket: 'Invalid_Bucket!!' }),
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}`, s3Key: '' }),
    (i) => JSON.stringify({ requestId: `junk-${i}` }),
    (i) => JSON.stringify({ ...base, requestId: { nested: i } }),
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}`, functionId: '../../etc/passwd' }),
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}`, functionId: 'x'.repeat(10_000) }),
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}\u0000\u202e\ud83d\ude00` }),
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}`, __proto__: { polluted: true }, constructor: { prototype: { x: 1 } } }),
    (i) => JSON.stringify({ ...base, requestId: `junk-${i}`, padding: 'p'.repeat(200_000) }),
    () => '{"a":'.repeat(5000) + '1' + '}'.repeat(5000),
    () => '\ufeff{"requestId": "bom"}',
  ];
  return Array.from({ length: n }, (_, i) => makers[i % makers.length]!(i));
}
