/**
 * Structured JSON-lines logger: a fixed message and data in fields. Values under keys that name
 * secret material are replaced before anything is written, so a careless field cannot leak a key.
 */
import type { LogLevel } from './config';

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_KEY = /(private.?key|password|passphrase|api.?key|token|secret|authorization)/i;

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export type LogWriter = (line: string) => void;

/** Creates a logger writing one JSON object per line to `write` (stdout by default). */
export function createLogger(
  level: LogLevel = 'info',
  write: LogWriter = (line) => process.stdout.write(line),
  base: LogFields = {},
): Logger {
  const min = LEVELS[level];
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[lvl] < min) return;
    const head = { time: new Date().toISOString(), level: lvl, msg };
    // The head is spread again last so a field named `level`, `msg` or `time` cannot relabel the line.
    const record = { ...head, ...base, ...fields, ...head };
    write(`${JSON.stringify(record, redact)}\n`);
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger(level, write, { ...base, ...fields }),
  };
}

function redact(key: string, value: unknown): unknown {
  if (key !== '' && SECRET_KEY.test(key) && value !== undefined && value !== null) return '[redacted]';
  if (value instanceof Error) return serializeError(value);
  return value;
}

/** Errors as loggable fields: name, message and cause chain; stacks only go to our own logs. */
export function serializeError(err: Error): LogFields {
  const out: LogFields = { name: err.name, message: err.message };
  if (err.stack) out.stack = err.stack;
  if (err.cause instanceof Error) out.cause = serializeError(err.cause);
  return out;
}

/** A logger that writes nothing (for tests that do not inspect logs). */
export const silentLogger: Logger = createLogger('error', () => {});
