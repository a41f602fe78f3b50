/**
 * `npm run cost-model [-- --check]`: the monthly AWS cost at 100, 10,000 and 100,000 tunnels, per
 * component, from the bench's measured counts in bench/results.json and the prices in
 * bench/cost/prices.ts. Prints it and rewrites the generated section of docs/cost-model.md;
 * `--check` only compares and exits 1 when the page is stale.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { measuredFrom } from './cost/inputs';
import { ASSUMPTIONS, estimate } from './cost/model';
import { PRICES } from './cost/prices';
import { renderSection, replaceSection, SIZES } from './cost/render';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const RESULTS_JSON = `${REPO_ROOT}bench/results.json`;
export const COST_MODEL_MD = `${REPO_ROOT}docs/cost-model.md`;

/** The generated section for a results.json's content. */
export function costSection(results: unknown): string {
  const { measured, provenance } = measuredFrom(results);
  const estimates = SIZES.map((tunnels) => estimate(tunnels, measured, ASSUMPTIONS, PRICES));
  return renderSection(estimates, measured, provenance, ASSUMPTIONS, PRICES);
}

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  const results: unknown = JSON.parse(await readFile(RESULTS_JSON, 'utf8'));
  const section = costSection(results);
  const doc = await readFile(COST_MODEL_MD, 'utf8');
  const next = replaceSection(doc, section);
  if (check) {
    if (next === doc) return 0;
    process.stderr.write('docs/cost-model.md is stale: run `npm run cost-model`\n');
    return 1;
  }
  process.stdout.write(`${section}\n`);
  if (next !== doc) await writeFile(COST_MODEL_MD, next);
  process.stderr.write(`wrote ${COST_MODEL_MD}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`cost model failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
