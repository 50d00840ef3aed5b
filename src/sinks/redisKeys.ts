/**
 * Every Redis name the platform uses, in one place (the Controller reads the same ones).
 * The result key and channel share a name: Redis keeps keys and channels apart, and
 * callers remember one name.
 */
const RESULT_PREFIX = 'result:';

export const resultChannel = (requestId: string) => `${RESULT_PREFIX}${requestId}`;
export const resultKey = (requestId: string) => `${RESULT_PREFIX}${requestId}`;
/** Pattern that matches every result channel, for PSUBSCRIBE. */
export const RESULT_CHANNEL_PATTERN = `${RESULT_PREFIX}*`;
/** The request id a result channel belongs to. */
export const requestIdOfChannel = (channel: string) => channel.slice(RESULT_PREFIX.length);
export const jobKey = (requestId: string) => `job:${requestId}`;
/** A function's recent peak memory figures (by Invocation.functionKey), shared by the fleet for right-sizing. */
export const historyKey = (functionKey: string) => `mem:${functionKey}`;
export const ownerKey = (requestId: string) => `owner:${requestId}`;
