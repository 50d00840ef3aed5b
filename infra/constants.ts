// Names the stack shares with the agent, the user data, ops/ and the tests.

/** The instance tag Prometheus's EC2 discovery finds workers by (ops/prometheus/prometheus.yml). */
export const DISCOVERY_TAG = { key: 'nanogrid-role', value: 'worker' } as const;
export const LIFECYCLE_HOOK = 'nanogrid-drain';
/** Holds each new instance until its user data reports the install: CONTINUE, or ABANDON. */
export const LAUNCH_HOOK = 'nanogrid-launch';
/** Where the release artifacts (npm run package) live in the code bucket. */
export const RELEASES_PREFIX = 'releases/';
export const ARTIFACT_VERSION_PATTERN = '^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$';
export const ARTIFACT_SHA256_PATTERN = '^[0-9a-f]{64}$';
export const METRICS_NAMESPACE = 'NanoGrid/FunctionRunner';
export const HTTP_PORT = 8080;
/** Where inputs by reference live in the user-data bucket (the agent adds the function id). */
export const INPUTS_PREFIX = 'inputs/';
