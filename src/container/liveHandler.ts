/**
 * A container's live handler (handler mode), as the agent knows it from the runner's
 * answers: the runner keeps the process stopped between calls (runner/handler.c).
 */
export interface LiveHandler {
  /** Function, code version and entry point, hashed: a call of another key ends it. */
  key: string;
  /** Its pid in the container's namespace. */
  nsPid: number;
  /** Its pid on the host: the one process of the sandbox user the host's check lets stay. */
  hostPid: number;
  /** cgroup v1: what the container held before it started (the runner, the zygote); a call's peak counts from there. */
  baselineBytes: number;
  /** cgroup v2: its own cgroup, made for its first call and kept for its life. */
  scope?: { readonly dir: string; remove(): Promise<boolean> } | undefined;
}
