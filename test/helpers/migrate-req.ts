/**
 * `net.ipv4.tcp_migrate_req` = 1 for a test file: what a closing `SO_REUSEPORT` listener still
 * queued moves to the other listeners of its port instead of being reset (local/reuseport-check.ts),
 * as the gateways' handovers expect. Returns the undo.
 */
import { readFile, writeFile } from 'node:fs/promises';

const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req';

export async function migrateQueuedConnections(): Promise<() => Promise<void>> {
  const before = (await readFile(MIGRATE_REQ, 'utf8')).trim();
  await writeFile(MIGRATE_REQ, '1');
  return () => writeFile(MIGRATE_REQ, before).catch(() => {});
}
