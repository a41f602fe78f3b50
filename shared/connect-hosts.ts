/**
 * Where the platform's workloads reach a tunnel (`connect.host`) when that is a fixed address per
 * block of tunnel ports rather than the gateway that carries it: in AWS, the internal load
 * balancers in front of every gateway task, each listening on one block of the tunnel port range
 * (cdk/lib/connect.ts). `CONNECT_HOSTS` is `FROM-TO=HOST[,FROM-TO=HOST...]`. Pure.
 */
import { hostProblem } from './hosts';

export interface ConnectHostBlock {
  from: number;
  to: number;
  host: string;
}

const ENTRY = /^(\d{1,5})-(\d{1,5})=(.+)$/;

/** Parses `CONNECT_HOSTS`; the problems, each naming its entry, when it does not parse. */
export function parseConnectHosts(value: string): { blocks: ConnectHostBlock[] } | { problems: string[] } {
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const blocks: ConnectHostBlock[] = [];
  const problems: string[] = [];
  for (const entry of entries) {
    const named = JSON.stringify(entry.slice(0, 300));
    const match = ENTRY.exec(entry);
    if (!match) {
      problems.push(`${named}: expected FROM-TO=HOST, e.g. 20000-20049=connect-1.internal`);
      continue;
    }
    const [, fromText, toText, host = ''] = match;
    const from = Number(fromText);
    const to = Number(toText);
    if (from < 1 || to > 65535 || from > to) {
      problems.push(`${named}: expected 1 <= FROM <= TO <= 65535`);
      continue;
    }
    const problem = hostProblem(host);
    if (problem) {
      problems.push(`${named}: the host ${problem}`);
      continue;
    }
    blocks.push({ from, to, host });
  }
  blocks.sort((a, b) => a.from - b.from);
  for (let i = 1; i < blocks.length; i++) {
    const [previous, next] = [blocks[i - 1], blocks[i]];
    if (previous && next && next.from <= previous.to) {
      problems.push(`${next.from}-${next.to} overlaps ${previous.from}-${previous.to}`);
    }
  }
  return problems.length > 0 ? { problems } : { blocks };
}

/** The tunnel ports of `range` no block covers, as `FROM-TO` spans (empty when all are covered). */
export function uncoveredPorts(
  blocks: readonly ConnectHostBlock[],
  range: { from: number; to: number },
): string[] {
  const gaps: string[] = [];
  let next = range.from;
  for (const block of [...blocks].sort((a, b) => a.from - b.from)) {
    if (block.to < next) continue;
    if (block.from > range.to) break;
    if (block.from > next) gaps.push(span(next, Math.min(block.from - 1, range.to)));
    next = Math.max(next, block.to + 1);
  }
  if (next <= range.to) gaps.push(span(next, range.to));
  return gaps;
}

/** The host that reaches `port`, or undefined when no block covers it. */
export function connectHostFor(blocks: readonly ConnectHostBlock[], port: number): string | undefined {
  return blocks.find((block) => port >= block.from && port <= block.to)?.host;
}

/** `CONNECT_HOSTS` written back (what `parseConnectHosts` reads). */
export function formatConnectHosts(blocks: readonly ConnectHostBlock[]): string {
  return blocks.map((b) => `${b.from}-${b.to}=${b.host}`).join(',');
}

const span = (from: number, to: number) => (from === to ? String(from) : `${from}-${to}`);
