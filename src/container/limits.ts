import { seccompOption } from './seccomp.js';

/**
 * Limits of every function container, set by the agent rather than inherited from dockerd
 * (whose defaults are generous: nofile 1048576 and an unlimited core size here). The anchors:
 * OpenWhisk sets nofile 1024 and pids 1024; Lambda allows 1,024 file descriptors and 1,024
 * processes and threads; Fn sets nofile, sigpending and msgqueue. nproc, sigpending and
 * msgqueue are counted per host uid by the kernel: with a uid per container
 * (sandboxUser.ts) they are per container.
 */
export interface SandboxLimits {
  /** Tasks (processes and threads) in the container: its pids cgroup and the function's nproc. */
  pids: number;
  /** Open files per process. */
  nofile: number;
  /** Signals queued for the function's uid. */
  sigpending: number;
  /** Bytes of POSIX message queues of the function's uid. */
  msgqueueBytes: number;
  /** The system calls allowed: the project's own profile (seccomp.ts), or dockerd's default. */
  seccomp: 'nanogrid' | 'docker-default';
}

export const DEFAULT_LIMITS: SandboxLimits = { pids: 512, nofile: 1024, sigpending: 1024, msgqueueBytes: 819_200, seccomp: 'nanogrid' };

export interface Ulimit {
  Name: string;
  Soft: number;
  Hard: number;
}

/** Soft equals hard: a function can lower a limit, never raise it. No core dumps at all. */
export function ulimitsFor(l: SandboxLimits): Ulimit[] {
  const both = (Name: string, n: number) => ({ Name, Soft: n, Hard: n });
  return [both('core', 0), both('nofile', l.nofile), both('nproc', l.pids), both('sigpending', l.sigpending), both('msgqueue', l.msgqueueBytes)];
}

export function securityOptions(l: SandboxLimits): string[] {
  return ['no-new-privileges', ...(l.seccomp === 'nanogrid' ? [seccompOption()] : [])];
}
