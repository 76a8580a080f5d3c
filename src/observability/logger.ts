/**
 * The one structured logger: JSON lines through pino, with every place a
 * secret could appear redacted. Prompts and completions are never logged.
 */
import { pino, type Logger } from 'pino';

export type LogLevel =
  'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Paths pino blanks out wherever they appear in a log record. */
const REDACT = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["api-key"]',
  'headers.authorization',
  'apiKey',
  'adminToken',
  'key',
  '*.apiKey',
  '*.key',
  'headers["x-api-key"]',
  'headers["api-key"]',
  // Bedrock credentials.
  'secretAccessKey',
  'sessionToken',
  '*.secretAccessKey',
  '*.sessionToken',
  // undici's parse errors carry the raw bytes they choked on, which may
  // hold a request's headers; AWS SDK errors carry the raw response.
  'err.rawPacket',
  'err.cause.rawPacket',
  '*.rawPacket',
  'err.$response',
];

export function createLogger(
  level: LogLevel,
  destination?: NodeJS.WritableStream,
): Logger {
  return pino(
    { level, redact: { paths: REDACT, censor: '[redacted]' } },
    destination ?? pino.destination({ dest: 2, sync: false }),
  );
}
