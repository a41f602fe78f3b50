/*
 * Fails on any warning `npm ci` printed. npm checks engines against the Node that runs it (Debian's
 * 20 here), so a dependency that declares Node 22 belongs in runtime-deps/, which the postinstall
 * installs with the pinned Node: no engine warning is expected, nor any other.
 */
import { readFileSync } from 'node:fs';

const log = readFileSync(process.argv[2] ?? '', 'utf8');
const warnings = log.split('\n').filter((line) => /^npm warn/i.test(line));
if (warnings.length > 0) {
  console.error(`ci: npm ci printed warnings:\n${warnings.join('\n')}`);
  process.exit(1);
}
