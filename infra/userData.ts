import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A file of ops/fleet/, from the source (infra/) or the build (dist/infra/). */
export function fleetFile(name: string): string {
  const candidates = ['../ops/fleet/', '../../ops/fleet/'].map((dir) => fileURLToPath(new URL(dir + name, import.meta.url)));
  return candidates.find((f) => existsSync(f)) ?? candidates[0]!;
}

/** EC2 refuses user data past 16 KB (before base64); what the tokens still add must fit under it. */
const USER_DATA_LIMIT = 16 * 1024;
const TOKEN_SLACK = 2 * 1024;

/** The files the user data writes to the instance as they are: one heredoc each, named by its placeholder. */
const INLINED: Record<string, { file: string; delimiter: string }> = {
  PACKAGES: { file: 'packages-al2023.sh', delimiter: 'NANOGRID_PACKAGES_EOF' },
  INSTALL: { file: 'install-artifact.sh', delimiter: 'NANOGRID_INSTALL_EOF' },
};

/**
 * The launch template's user data: ops/fleet/user-data.sh with its placeholders (two @ signs
 * around a name) filled from `values`, and the distribution's package step and the artifact's
 * installer inlined. The installer comes from here, not from the tarball: it is what checks the
 * tarball, so it must not be one of the things it checks.
 */
export function workerUserData(values: Record<string, string>, opts: { packagesFile?: string } = {}): string {
  const all: Record<string, string> = { ...values };
  for (const [name, { file, delimiter }] of Object.entries(INLINED)) {
    // Another distribution's package step (the VM suite's Debian guest) in place of Amazon Linux's.
    const path = name === 'PACKAGES' && opts.packagesFile ? opts.packagesFile : fleetFile(file);
    const text = readFileSync(path, 'utf8').trimEnd();
    // A line equal to the delimiter would end the heredoc early and run the rest as user data.
    if (text.split('\n').includes(delimiter)) throw new Error(`${file} has a line '${delimiter}', the heredoc's delimiter`);
    all[name] = text;
  }
  // One pass: text put in (the inlined scripts) is never scanned for placeholders itself.
  const script = readFileSync(fleetFile('user-data.sh'), 'utf8').replace(/@@([A-Z0-9_]+)@@/g, (_, name: string) => {
    const v = all[name];
    if (v === undefined) throw new Error(`user-data.sh names @@${name}@@, which the stack does not fill`);
    return v;
  });
  const size = Buffer.byteLength(script);
  if (size > USER_DATA_LIMIT - TOKEN_SLACK) throw new Error(`the user data is ${size} bytes: over EC2's 16 KB once the stack's values are in`);
  return script;
}
