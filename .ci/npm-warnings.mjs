/*
 * Fails on any warning `npm ci` printed, except an engine warning (EBADENGINE) whose required Node
 * range the runtime running this script (the pinned one) meets: npm checks engines against the Node
 * that runs npm, which is not the one our code runs on. Only `>=x.y.z` ranges are understood; any
 * other range fails, to be looked at.
 */
import { readFileSync } from 'node:fs';

const log = readFileSync(process.argv[2] ?? '', 'utf8');
const version = (text) => text.split('.').map(Number);
const atLeast = (have, want) => {
  for (let i = 0; i < 3; i++) if ((have[i] ?? 0) !== (want[i] ?? 0)) return (have[i] ?? 0) > (want[i] ?? 0);
  return true;
};

const running = version(process.versions.node);
const problems = [];
const engineBlocks = log.matchAll(
  /npm warn EBADENGINE\s+package: '([^']+)',\s*\nnpm warn EBADENGINE\s+required: \{ node: '([^']+)' \}/g,
);
for (const [, pkg, range] of engineBlocks) {
  const floor = /^>=\s*(\d+\.\d+\.\d+)$/.exec(range);
  if (floor && atLeast(running, version(floor[1] ?? ''))) {
    console.log(
      `ci: ${pkg} wants Node ${range}: met by the runtime (${process.version}); npm checked its own Node`,
    );
  } else {
    problems.push(`${pkg} wants Node ${range}, not met by ${process.version}`);
  }
}
const otherWarnings = log
  .split('\n')
  .filter((line) => /^npm warn/i.test(line) && !/^npm warn EBADENGINE/.test(line));
problems.push(...otherWarnings);
if (problems.length > 0) {
  console.error(`ci: npm ci printed warnings:\n${problems.join('\n')}`);
  process.exit(1);
}
