import { z } from 'zod';

/** A setting the agent cannot start with: names the variable, says what is wrong. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`invalid configuration ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export type Env = Record<string, string | undefined>;

export const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** A variable through its schema; unset or blank, the fallback. */
export function read<T>(env: Env, name: string, schema: z.ZodType<T>, fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const parsed = schema.safeParse(raw.trim());
  if (!parsed.success) {
    throw new ConfigError(name, `${JSON.stringify(raw)}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  return parsed.data;
}
