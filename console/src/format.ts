/** Words and times as the console shows them; pure, so tests run them without a browser. */
import { STATUS_CODE_TITLES } from '../../shared/troubleshooting';
import type { StatusErrorCode } from './api';

export const STATE_WORDS: Record<string, string> = {
  pending: 'Waiting for first connection',
  up: 'Up',
  down: 'Down',
  disabled: 'Disabled',
};

/** "3 min ago", "just now", "2 h ago", "5 d ago" from an ISO time (the exact time goes in a title). */
export function ago(iso: string, now: number): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return iso;
  const s = Math.max(0, Math.round((now - then) / 1000));
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

/** The status error code in words, or the code itself for one this console does not know yet. */
export function codeWords(code: string): string {
  return (STATUS_CODE_TITLES as Record<string, string>)[code] ?? code;
}

export function isStatusErrorCode(code: string): code is StatusErrorCode {
  return Object.hasOwn(STATUS_CODE_TITLES, code);
}

/** What each step of `POST .../test` checks, in words. */
export const CHECK_WORDS: Record<string, string> = {
  configured: 'Tunnel configuration',
  customer_connected: 'Your ssh session is connected',
  resolve: "Bastion's name resolves",
  tcp: 'TCP connection to the bastion',
  ssh_handshake: 'SSH handshake and host key',
  auth: 'Login with the tunnel key',
  channel: 'Forward to the service opened',
  probe: 'Service answers',
};

/** The steps a test of this type of tunnel runs, shown as pending while it runs. */
export const EXPECTED_CHECKS: Record<'standard' | 'reverse', string[]> = {
  reverse: ['configured', 'customer_connected', 'channel', 'probe'],
  standard: ['configured', 'resolve', 'tcp', 'ssh_handshake', 'auth', 'channel', 'probe'],
};

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function ms(n: number): string {
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(1)} s`;
}
