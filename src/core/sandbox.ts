import { join } from 'node:path';

/**
 * The names a function's sandbox is built from, in one place: who the function runs as,
 * where its workspace is, how the agent's containers are labelled and where their host
 * folders live.
 */

/** The uid:gid functions run as inside the container; the workspace is chowned to it. */
export const SANDBOX_UID = 65534;
export const SANDBOX_GID = 65534;
/** Where the container's own host folder is mounted; the workspace is a folder in it. */
export const SANDBOX_MOUNT = '/sandbox';
export const WORKSPACE_NAME = 'work';
/** The function's working directory, as the function sees it. */
export const WORKDIR = `${SANDBOX_MOUNT}/${WORKSPACE_NAME}`;

export const LABEL_AGENT = 'nanogrid.agent';
export const LABEL_RUN = 'nanogrid.run';
export const LABEL_RUNTIME = 'nanogrid.runtime';

/** Everything of one agent on the host lives under this folder; it is removed at start. */
export const agentRoot = (workRoot: string, agentId: string) => join(workRoot, agentId);
/** Where code is unpacked before it moves into a container's workspace. */
export const stagingRoot = (workRoot: string, agentId: string) => join(agentRoot(workRoot, agentId), 'staging');
/** A container's own host folder, mounted at SANDBOX_MOUNT. */
export const containerHostDir = (workRoot: string, agentId: string, name: string) => join(agentRoot(workRoot, agentId), 'containers', name);
/** The workspace inside a container's host folder. */
export const workspaceHostPath = (hostDir: string) => join(hostDir, WORKSPACE_NAME);
