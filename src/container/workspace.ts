import { readFileSync } from 'node:fs';
import type { Scratch, ScratchUsage, StagedCode } from './scratch.js';

/**
 * A container's workspace on its scratch file system: the code version staged there
 * (kept between runs of that version), the run's input, and the clean slate between runs,
 * with the bookkeeping that lets a run that left nothing skip the wipe.
 */
export class Workspace {
  /** The code version in the workspace. */
  private staged: { id: string; names: readonly string[] } | null = null;
  /** Free inodes and blocks just after the last wipe (null: none since a change the agent made). */
  private cleanMark: { inodesFree: number; blocksFree: number } | null = null;
  /** The scratch space just after the last run ended (null once a run starts). */
  private afterRun: ScratchUsage | null = null;
  /** /tmp and /dev/shm were left to a live handler: they are the staged version's only. */
  private scratchKept = false;

  constructor(readonly scratch: Scratch) {}

  /** Puts `code` in the workspace, unless that version is already there. */
  async stage(code: StagedCode): Promise<void> {
    if (this.staged?.id === code.id) return;
    this.staged = null;
    this.cleanMark = null;
    if (this.scratchKept) {
      await this.scratch.wipe([]);
      this.scratchKept = false;
    }
    await this.scratch.stage(code);
    this.staged = { id: code.id, names: code.names };
  }

  /** Puts the run's input in the workspace (after stage). */
  writeInput(bytes: Buffer): Promise<void> {
    this.cleanMark = null;
    return this.scratch.writeInput(bytes);
  }

  /** A run starts: what the scratch space held after the last one no longer says anything. */
  runStarting(): void {
    this.afterRun = null;
  }

  /**
   * Gives the next run a clean slate: empties /tmp and /dev/shm and removes what the last
   * run added to the workspace (all of it when no code is staged). Host-side: no exec.
   *
   * Skipped when the run provably left nothing: its scratch file system is its own, and
   * everything a run can leave there (a file, folder, link, FIFO or socket, and any data or
   * attribute, which need a file of its own) takes an inode, except a hard link, which the
   * kernel refuses to a file the function does not own (fs.protected_hardlinks, checked);
   * the files that are there after a wipe are root's and read-only. So free inodes and
   * blocks just after the run equal to those just after the last wipe mean the same tree.
   *
   * `keepScratch` (a live handler's): /tmp and /dev/shm stay for its next call, as they
   * do in a warm Lambda; the workspace (output/, input/) is still emptied. They are wiped
   * before another code version is staged, and at the first reset without a handler.
   */
  async reset(opts: { keepScratch?: boolean } = {}): Promise<void> {
    const keep = opts.keepScratch === true;
    const after = this.afterRun;
    this.afterRun = null;
    const mark = this.cleanMark;
    // A handler's /tmp outlives it by no reset: without one, the skip needs a full wipe before.
    const tidy = keep || !this.scratchKept;
    if (tidy && after && mark && after.inodesFree === mark.inodesFree && after.blocksFree === mark.blocksFree && hardLinksProtected()) return;
    this.cleanMark = null;
    await this.scratch.wipe(this.staged?.names ?? [], keep);
    this.scratchKept = keep;
    const now = await this.scratch.usage().catch(() => null);
    this.cleanMark = now && { inodesFree: now.inodesFree, blocksFree: now.blocksFree };
  }

  /** What the writable space holds now (after a run: whether the run filled it). */
  async usage(): Promise<ScratchUsage> {
    const u = await this.scratch.usage();
    this.afterRun = u;
    return u;
  }
}

let hardLinks: boolean | undefined;
/** fs.protected_hardlinks: a user cannot hard-link a file it does not own (read once). */
function hardLinksProtected(): boolean {
  if (hardLinks === undefined) {
    try {
      hardLinks = readFileSync('/proc/sys/fs/protected_hardlinks', 'utf8').trim() === '1';
    } catch {
      hardLinks = false;
    }
  }
  return hardLinks;
}
