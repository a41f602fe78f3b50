/**
 * Gateways on one host share each tunnel's port (SO_REUSEPORT). When one closes its listener (a
 * restart), Linux resets the connections still queued on it unless `net.ipv4.tcp_migrate_req` is 1
 * (Linux 5.14+), which moves them to another listener of the port. Said once at start, with the fix.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from '../shared/logger';

const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req';

export async function warnUnlessQueuedConnectionsMigrate(logger: Logger): Promise<void> {
  let value: string;
  try {
    value = (await readFile(MIGRATE_REQ, 'utf8')).trim();
  } catch {
    logger.warn('connections queued on a stopping gateway may be reset', {
      reason: `${MIGRATE_REQ} cannot be read (not Linux 5.14+)`,
    });
    return;
  }
  if (value !== '1') {
    logger.warn('connections queued on a stopping gateway may be reset', {
      reason: 'net.ipv4.tcp_migrate_req is 0: the kernel drops what is queued on a listener that closes',
      fix: 'sysctl -w net.ipv4.tcp_migrate_req=1 (as root), so a gateway restart hands them to the others',
    });
  }
}
