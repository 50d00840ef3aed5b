import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One JSON line per event on stdout. Invocation loggers are children carrying
 * `requestId`, so every line of an invocation has it; `tag` keeps the original
 * system's grep-able tags ([DOCKER], [REDIS], [FAIL][S3], ...).
 */
export function createLogger(level = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'nanogrid-worker' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
