import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LogLevel } from '../../shared/config';
import { SecretAccessDeniedError } from '../../shared/errors';
import { createLogger, type Logger, serializeError } from '../../shared/logger';

const NOW = new Date('2026-03-01T12:34:56.789Z');
const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** A logger at `level` whose lines are captured. */
function capture(level: LogLevel = 'debug') {
  const lines: string[] = [];
  const logger = createLogger(level, (line) => lines.push(line));
  // biome-ignore lint/suspicious/noExplicitAny: log records carry fields of many shapes
  const records = (): any[] => lines.map((line) => JSON.parse(line));
  return { logger, lines, records };
}

function emit(logger: Logger, level: LogLevel, msg: string) {
  logger[level](msg, { n: 1 });
}

describe('createLogger', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes one JSON object per line with time, level, msg and the fields', () => {
    const { logger, lines } = capture();
    logger.info('tunnel created', { tunnelId: 'tun_abc', port: 20001, nested: { ok: true } });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\{.*\}\n$/);
    expect(lines[0]?.indexOf('\n')).toBe((lines[0]?.length ?? 0) - 1);
    expect(JSON.parse(lines[0] ?? '')).toEqual({
      time: NOW.toISOString(),
      level: 'info',
      msg: 'tunnel created',
      tunnelId: 'tun_abc',
      port: 20001,
      nested: { ok: true },
    });
  });

  it('starts every line with time, level and msg, in that order', () => {
    const { logger, lines } = capture();
    logger.warn('slow', { ms: 12 });
    expect(Object.keys(JSON.parse(lines[0] ?? ''))).toEqual(['time', 'level', 'msg', 'ms']);
  });

  it('keeps time, level and msg when a field has the same name', () => {
    const { logger, records } = capture();
    logger.error('request failed', { level: 'debug', msg: 'all good', time: 'later' });
    expect(records()).toEqual([{ time: NOW.toISOString(), level: 'error', msg: 'request failed' }]);
  });

  it('escapes newlines inside fields so one call stays one line', () => {
    const { logger, lines, records } = capture();
    logger.info('input', { value: 'a\nb\r\nc' });
    expect(lines[0]?.split('\n')).toHaveLength(2);
    expect(records()[0].value).toBe('a\nb\r\nc');
  });

  it.each([
    ['debug', ['debug', 'info', 'warn', 'error']],
    ['info', ['info', 'warn', 'error']],
    ['warn', ['warn', 'error']],
    ['error', ['error']],
  ] satisfies [LogLevel, LogLevel[]][])('at level %s writes only %j', (level, written) => {
    const { logger, records } = capture(level);
    for (const lvl of LEVELS) emit(logger, lvl, `m-${lvl}`);
    expect(records().map((r) => r.level)).toEqual(written);
    expect(records().map((r) => r.msg)).toEqual(written.map((l) => `m-${l}`));
  });

  it('defaults to info', () => {
    const lines: string[] = [];
    const logger = createLogger(undefined, (line) => lines.push(line));
    logger.debug('hidden');
    logger.info('shown');
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['shown']);
  });

  it('adds child fields to every line, lets call fields win, and leaves the parent alone', () => {
    const { logger, records } = capture('info');
    const worker = logger.child({ worker: 'w1', tunnelId: 'tun_parent' });
    const conn = worker.child({ connId: 'c7' });
    conn.info('forward granted', { tunnelId: 'tun_call' });
    worker.debug('filtered by the inherited level');
    logger.info('plain');
    expect(records()).toEqual([
      {
        time: NOW.toISOString(),
        level: 'info',
        msg: 'forward granted',
        worker: 'w1',
        connId: 'c7',
        tunnelId: 'tun_call',
      },
      { time: NOW.toISOString(), level: 'info', msg: 'plain' },
    ]);
  });

  it.each([
    ['privateKey', { privateKey: 'SECRET-1' }],
    ['private_key', { private_key: 'SECRET-1' }],
    ['password', { auth: { method: 'password', password: 'SECRET-1' } }],
    ['passphrase', { keys: [{ passphrase: 'SECRET-1', publicKey: 'ssh-ed25519 AAAA' }] }],
    ['apiKey', { request: { body: { apiKey: 'SECRET-1' } } }],
    ['api_key', { api_key: 'SECRET-1' }],
    ['token', { token: 'SECRET-1' }],
    ['adminToken', { deep: [[{ adminToken: 'SECRET-1' }]] }],
    ['secret', { secret: { keys: ['SECRET-1'] } }],
    ['clientSecret', { clientSecret: 'SECRET-1' }],
    ['authorization', { headers: { authorization: 'Bearer SECRET-1' } }],
    ['Authorization', { headers: { Authorization: 'Bearer SECRET-1' } }],
  ])('redacts %s at any depth', (key, fields) => {
    const { logger, lines } = capture();
    logger.info('redaction', fields);
    expect(lines[0]).not.toContain('SECRET-1');
    expect(lines[0]).toContain(`"${key}":"[redacted]"`);
  });

  it('redacts secret fields given to a child, and keeps public ones', () => {
    const { logger, records } = capture();
    logger.child({ apiKey: 'tk_SECRET' }).info('key parsed', {
      publicKey: 'ssh-ed25519 AAAA',
      publicKeyFingerprint: 'SHA256:abc',
      method: 'password',
    });
    expect(records()[0]).toMatchObject({
      apiKey: '[redacted]',
      publicKey: 'ssh-ed25519 AAAA',
      publicKeyFingerprint: 'SHA256:abc',
      method: 'password',
    });
  });

  it('serializes Error fields with name, message and the cause chain, at any depth', () => {
    const { logger, records } = capture();
    const aws = Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' });
    const err = new SecretAccessDeniedError('tunnels/tun_abc', { cause: aws });
    logger.error('unhandled error', { err, attempts: [{ err: new TypeError('bad input') }] });
    const [record] = records();
    expect(record.err).toEqual({
      name: 'SecretAccessDeniedError',
      message: 'access to secret tunnels/tun_abc denied',
      stack: expect.stringContaining('SecretAccessDeniedError'),
      cause: { name: 'AccessDeniedException', message: 'User is not authorized', stack: expect.any(String) },
    });
    expect(record.attempts[0].err).toMatchObject({ name: 'TypeError', message: 'bad input' });
  });

  it('writes nothing for a level below the threshold even when fields are costly to serialize', () => {
    const { logger, lines } = capture('warn');
    const fields = {
      get expensive(): string {
        throw new Error('serialized a filtered record');
      },
    };
    logger.info('filtered', fields);
    expect(lines).toEqual([]);
  });
});

describe('serializeError', () => {
  it('keeps name, message and an Error cause; drops a non-Error cause', () => {
    const inner = new RangeError('out of range');
    expect(serializeError(new Error('outer', { cause: inner }))).toMatchObject({
      name: 'Error',
      message: 'outer',
      cause: { name: 'RangeError', message: 'out of range' },
    });
    expect(serializeError(new Error('outer', { cause: 'a string' }))).not.toHaveProperty('cause');
  });
});
