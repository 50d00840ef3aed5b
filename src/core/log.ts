import { pino, type Logger } from 'pino';
import { buildVersion } from './version.js';

export type { Logger };

/**
 * One JSON line per event on stdout. Invocation loggers are children carrying
 * `requestId`, so every line of an invocation has it; `tag` keeps the original
 * system's grep-able tags ([DOCKER], [REDIS], [FAIL][S3], ...). Every line carries the
 * build's version; an error under `err` is written with its type, message, stack and cause.
 */
export function createLogger(level = 'info', destination?: pino.DestinationStream, also?: pino.DestinationStream): Logger {
  const out = destination ?? pino.destination({ fd: 1, sync: false });
  return pino(
    {
      level,
      base: { service: 'nanogrid-worker', version: buildVersion() },
      serializers: { err: pino.stdSerializers.errWithCause },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // `also`: a second copy of every line (the CloudWatch Logs shipper), at the same level.
    also ? pino.multistream([{ level: level as pino.Level, stream: out }, { level: level as pino.Level, stream: also }]) : out,
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
