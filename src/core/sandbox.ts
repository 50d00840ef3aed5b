import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The names a function's sandbox is built from, in one place: who the function runs as,
 * where its workspace is, how the agent's containers are labelled and where their host
 * folders live.
 */

/** Where the container's own host folder is mounted; the workspace is a folder in it. */
export const SANDBOX_MOUNT = '/sandbox';
export const WORKSPACE_NAME = 'work';
/** The function's working directory, as the function sees it. */
export const WORKDIR = `${SANDBOX_MOUNT}/${WORKSPACE_NAME}`;

/** The invocation's input, written by the agent into the workspace (and given as stdin). */
export const INPUT_DIR = '.nanogrid';
export const INPUT_FILE = 'input.json';
export const INPUT_PATH = `${WORKDIR}/${INPUT_DIR}/${INPUT_FILE}`;

/** The block a file system (ext4, XFS) gives a folder, and in which it stores file contents: what code on disk is counted in. */
export const FS_BLOCK = 4096;

export const LABEL_AGENT = 'nanogrid.agent';
export const LABEL_RUN = 'nanogrid.run';
export const LABEL_RUNTIME = 'nanogrid.runtime';

/** Everything of one agent on the host lives under this folder; it is removed at start. */
export const agentRoot = (workRoot: string, agentId: string) => join(workRoot, agentId);
/** The code cache: one unpacked, read-only copy of each code version (copied into workspaces). */
export const codeCacheRoot = (workRoot: string, agentId: string) => join(agentRoot(workRoot, agentId), 'code');
/** A container's own host folder, mounted at SANDBOX_MOUNT. */
export const containerHostDir = (workRoot: string, agentId: string, name: string) => join(agentRoot(workRoot, agentId), 'containers', name);

/** Where the runner lives inside every function container (mounted read-only). */
export const RUNNER_MOUNT = '/nanogrid';
/** In a container's host folder (so at SANDBOX_MOUNT/cc), root's: its function's build cache entries (src/build/buildCache.ts). */
export const BUILD_CACHE_DIR = 'cc';
/**
 * The runner's folder, which only root can enter: its control socket, and the streams it
 * keeps whole. It lives on the container's scratch file system, under the same limit as
 * everything else of a run.
 */
export const CONTROL_DIR = 'ctl';
export const RUNNER_SOCKET = 'runner.sock';
/** Where the runner keeps a stream whole once it passes the output limit (inside the container). */
export const SPOOL_NAMES = { stdout: 'stdout.full', stderr: 'stderr.full' } as const;
export const SPOOL_STDOUT = `${SANDBOX_MOUNT}/${CONTROL_DIR}/${SPOOL_NAMES.stdout}`;
export const SPOOL_STDERR = `${SANDBOX_MOUNT}/${CONTROL_DIR}/${SPOOL_NAMES.stderr}`;

/**
 * The folder runner/build.sh fills (the static runner and the Python zygote), whether this
 * module runs from dist/ or from src/ under the test runner.
 */
export function defaultRunnerDir(): string {
  const candidates = [new URL('../../runner', import.meta.url), new URL('../../dist/runner', import.meta.url)];
  for (const c of candidates) {
    const p = fileURLToPath(c);
    if (existsSync(join(p, 'runner'))) return p;
  }
  return fileURLToPath(candidates[0]!);
}
