import { chmod, lstat, mkdir, realpath } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Makes sure `dir` is a folder only root can enter, reached without a symbolic link: the
 * work root and the outbox hold every function's code and results. Missing folders are
 * made 0700; an existing one is refused when any component of its path is a link, when
 * it is not a folder or not root's, and narrowed to 0700 when it is wider.
 */
export async function ensurePrivateDir(dir: string, variable: string): Promise<void> {
  await mkdirPrivate(dir);
  const real = await realpath(dir);
  if (real !== dir) throw new Error(`${variable} ${dir} is reached through a symbolic link (it is ${real}): give the real path`);
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new Error(`${variable} ${dir} is not a folder`);
  if (process.getuid?.() === 0 && st.uid !== 0) throw new Error(`${variable} ${dir} belongs to uid ${st.uid}, not root: another user could change what the agent runs`);
  if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
}

/** mkdir -p, each folder it makes 0700 (mkdir's mode is masked by the umask; chmod is not). */
async function mkdirPrivate(dir: string): Promise<void> {
  const exists = await lstat(dir).then(
    () => true,
    () => false,
  );
  if (exists) return;
  if (dirname(dir) !== dir) await mkdirPrivate(dirname(dir));
  await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await chmod(dir, 0o700);
}
