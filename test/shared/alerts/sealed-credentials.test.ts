/**
 * The sealing of alert channel credentials: a round trip, and every way a sealed value must fail to
 * open (another key, one altered byte anywhere, another channel's or workspace's item, an unknown
 * format), each with an error that names the channel and quotes nothing.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ChannelCredentials } from '../../../shared/alerts/channel-schemas';
import {
  newChannelKey,
  openCredentials,
  parseChannelKey,
  sealCredentials,
} from '../../../shared/alerts/sealed-credentials';
import { SealedCredentialsError, SecretStoreError } from '../../../shared/errors';

const key = parseChannelKey(newChannelKey());
const FOR = { workspaceId: 'ws_acme', channelId: 'ach_aaaaaaaaaaaaaaaa' };
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const SLACK_URL = 'https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/cccccccccccccccccccccccc';
const ROUTING_KEY = 'R0123456789abcdef0123456789abcde';

/** The value with one byte of its decoded part `part` (1: nonce, 2: ciphertext and tag) flipped. */
function flipped(sealed: string, part: 1 | 2, index: number): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[part] ?? '', 'base64url');
  const at = (index + bytes.length) % bytes.length;
  bytes[at] = (bytes[at] ?? 0) ^ 0x01;
  parts[part] = bytes.toString('base64url');
  return parts.join('.');
}

/** Runs `open`, expecting a `SealedCredentialsError`; returns its message. */
function failure(open: () => unknown): string {
  try {
    open();
  } catch (err) {
    expect(err).toBeInstanceOf(SealedCredentialsError);
    const message = (err as SealedCredentialsError).message;
    expect(message).toContain(FOR.channelId);
    for (const secret of [SECRET, SLACK_URL, ROUTING_KEY, 'cccccccccccc'])
      expect(message).not.toContain(secret);
    return message;
  }
  throw new Error('opened a value that must not open');
}

describe('sealed alert channel credentials', () => {
  it.each<[string, ChannelCredentials]>([
    ['a webhook secret', { secret: SECRET }],
    ['a Slack URL', { url: SLACK_URL }],
    ['a PagerDuty routing key', { routingKey: ROUTING_KEY }],
    ['nothing at all', {}],
  ])('round-trips %s, and the sealed value shows none of it', (_, credentials) => {
    const sealed = sealCredentials(key, FOR, credentials);
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    for (const value of Object.values(credentials)) expect(sealed).not.toContain(value);
    expect(openCredentials(key, FOR, sealed)).toEqual(credentials);
  });

  it('seals one value two ways: a fresh 12-byte nonce each time', () => {
    const values = Array.from({ length: 50 }, () => sealCredentials(key, FOR, { secret: SECRET }));
    expect(new Set(values).size).toBe(values.length);
    expect(new Set(values.map((v) => v.split('.')[1])).size).toBe(values.length);
    expect(Buffer.from(values[0]?.split('.')[1] ?? '', 'base64url')).toHaveLength(12);
    for (const value of values) expect(openCredentials(key, FOR, value)).toEqual({ secret: SECRET });
  });

  it('does not open under another key', () => {
    const sealed = sealCredentials(key, FOR, { secret: SECRET });
    const other = parseChannelKey(newChannelKey());
    expect(failure(() => openCredentials(other, FOR, sealed))).toMatch(/authentication failed/);
  });

  it.each<[string, 1 | 2, number]>([
    ['the nonce', 1, 0],
    ['the first byte of the ciphertext', 2, 0],
    ['the last byte of the ciphertext', 2, -17],
    ['the tag', 2, -1],
  ])('does not open with one bit of %s altered', (_, part, index) => {
    const sealed = sealCredentials(key, FOR, { routingKey: ROUTING_KEY });
    const altered = flipped(sealed, part, index);
    expect(altered).not.toBe(sealed);
    expect(failure(() => openCredentials(key, FOR, altered))).toMatch(/authentication failed/);
  });

  it.each([
    ['another channel of the workspace', { ...FOR, channelId: 'ach_bbbbbbbbbbbbbbbb' }],
    ['the same channel id in another workspace', { ...FOR, workspaceId: 'ws_other' }],
    // The parts are kept apart: moving a character from one id to the other is another item.
    ['ids whose concatenation is the same', { workspaceId: 'ws_acmea', channelId: 'ch_aaaaaaaaaaaaaaaa' }],
  ])("does not open as %s's (a value copied between items)", (_, elsewhere) => {
    const sealed = sealCredentials(key, FOR, { url: SLACK_URL });
    expect(() => openCredentials(key, elsewhere, sealed)).toThrow(/authentication failed/);
    expect(() => openCredentials(key, elsewhere, sealed)).toThrow(SealedCredentialsError);
  });

  it.each([
    ['a later format', 'v2.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', /unknown format v2$/],
    ['a clear value where a sealed one belongs', SECRET, /not a sealed value$/],
    ['an empty string', '', /not a sealed value$/],
    ['a part too many', `${sealCredentials(key, FOR, {})}.AAAA`, /malformed sealed value$/],
    ['a short nonce', 'v1.AAAA.AAAAAAAAAAAAAAAAAAAAAA', /malformed sealed value$/],
    ['no tag', 'v1.AAAAAAAAAAAAAAAA.AAAA', /malformed sealed value$/],
    ['characters outside base64url', 'v1.AAAAAAAAAAAAAAA+.AAAAAAAAAAAAAAAAAAAAAA', /malformed sealed value$/],
  ])('refuses %s, saying what it is', (_, value, why) => {
    expect(failure(() => openCredentials(key, FOR, value))).toMatch(why);
  });

  it('refuses sealed content that is not channel credentials, even under the right key', () => {
    const sealed = sealCredentials(key, FOR, { secret: SECRET, extra: 'x' } as ChannelCredentials);
    expect(failure(() => openCredentials(key, FOR, sealed))).toMatch(/not channel credentials$/);
  });

  it('reads its key from the stored text, refusing anything but 32 bytes of base64url without quoting it', () => {
    const text = newChannelKey();
    expect(text).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(parseChannelKey(`${text}\n`)).toEqual(Buffer.from(text, 'base64url'));
    const bad = ['', 'short', `${text}AAAA`, `${text.slice(0, 42)}+`, randomBytes(32).toString('hex')];
    for (const value of bad) {
      let err: unknown;
      try {
        parseChannelKey(value);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SecretStoreError);
      expect((err as Error).message).toBe(
        'secret alerts/channel-key is not a key: expected 32 bytes of base64url',
      );
    }
    expect(() => sealCredentials(Buffer.alloc(16), FOR, {})).toThrow(/32 bytes, not 16/);
  });
});
