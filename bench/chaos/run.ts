/**
 * `npm run chaos [-- --only=<scenario,...>] [--quick]`: what a fleet meets, run against this
 * machine's own `npm start` with real clients, each scenario printing its figures against their
 * targets. Exits non-zero when a target is missed. Scenarios run one after the other (each owns the
 * machine). `--quick` keeps what the targets are about and drops the comparisons (crypto-load: the
 * pool's baseline and passphrase burst, without the RSA burst and the inline "before" run).
 */
import { loadavg } from 'node:os';
import { runCryptoLoad } from './crypto-load';
import { type ChaosFigure, formatFigures } from './figures';
import { silentFlood } from './silent-flood';
import { runStorageOutage } from './storage-outage';

interface Scenario {
  name: string;
  what: string;
  run: (log: (line: string) => void, quick: boolean) => Promise<{ figures: ChaosFigure[] }>;
}

const SCENARIOS: Scenario[] = [
  {
    name: 'crypto-load',
    what: 'passphrase-key and RSA-4096 creates in bursts while a reverse tunnel carries bytes; the key pool against inline',
    run: (log, quick) => runCryptoLoad(quick ? { log, compareInline: false, rsaCreates: 0 } : { log }),
  },
  {
    name: 'silent-flood',
    what: '2,000 silent connections from 8 sources; a customer from a ninth logs in 20 times',
    run: (log) => silentFlood({ log }),
  },
  {
    name: 'storage-outage',
    what: "npm start's DynamoDB Local killed while a reverse and a standard tunnel carry traffic",
    run: (log) => runStorageOutage(undefined, log),
  },
];

async function main(): Promise<void> {
  const only = process.argv
    .find((arg) => arg.startsWith('--only='))
    ?.slice('--only='.length)
    .split(',');
  const unknown = only?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
  if (unknown.length > 0) {
    throw new Error(
      `unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`,
    );
  }
  const chosen = SCENARIOS.filter((s) => !only || only.includes(s.name));
  const quick = process.argv.includes('--quick');
  const log = (line: string) => process.stderr.write(`${line}\n`);
  let missed = 0;
  for (const scenario of chosen) {
    log(`chaos: ${scenario.name}: ${scenario.what} (load average ${loadavg()[0]?.toFixed(1)})`);
    const started = Date.now();
    const { figures } = await scenario.run(log, quick);
    missed += figures.filter((f) => f.ok === false).length;
    process.stdout.write(
      `${formatFigures(`${scenario.name} (${Math.round((Date.now() - started) / 1000)} s; reproduce: npm run chaos -- --only=${scenario.name}${quick ? ' --quick' : ''})`, figures)}\n\n`,
    );
  }
  if (missed > 0) {
    process.stdout.write(`${missed} target(s) missed\n`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
