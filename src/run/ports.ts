import type { StoredOutput } from '../core/result.js';
import type { Logger } from '../core/log.js';

/**
 * What the run path hands its products to, seen only through these; the sinks implement
 * them (the layer above).
 */

/** What was stored of a run's output/ folder, and what was not and why. */
export interface OutputReport {
  outputs: StoredOutput[];
  /** At most 20 lines, the last one counting the rest. */
  errors: string[];
}

/** Where the files a function left under output/ go (the user-data bucket). */
export interface OutputPort {
  /** Reads `workspace`'s output/ (through the agent's nosymfollow view) and stores its regular files. */
  store(workspace: string, functionId: string, requestId: string, log: Logger): Promise<OutputReport>;
  /** Stores a stream the runner kept whole; the error text when it could not be stored. */
  storeStream(path: string, functionId: string, requestId: string, name: string, log: Logger): Promise<StoredOutput | string>;
}

/** Where the code of versions that succeeded is copied (GCP_BUCKET_NAME). */
export interface ArchivePort {
  offer(version: { bucket: string; key: string; etag: string }): void;
}

/** Where the function's peaks are kept (the Redis memory history). */
export interface PeakHistory {
  /**
   * Records a peak and returns the function's recent peaks, newest last (keyed on
   * Invocation.functionKey). With the request id, the peaks its claim read may answer
   * without a call of its own, the peak then going out with the result's write.
   */
  record(functionKey: string, peakBytes: number, log: Logger, requestId?: string): Promise<number[]>;
}
