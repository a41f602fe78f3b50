/**
 * One full pass of the status sweeper over every tunnel in the table: the backstop AWS runs every
 * 6 hours (cdk/lib/sweeper.ts), which the idle phase's steady windows never hold. Run in this
 * process with the sweeper Lambda's own composition, timed, and its DynamoDB reads metered
 * through the stack's proxy: the cost model's full-pass figures (milliseconds and read units per
 * tunnel) are these, not assumptions.
 */
import { sweepDepsFromEnv } from '../lambda/sweeper/compose';
import { sweep } from '../lambda/sweeper/sweep';
import { localSecretStore } from '../local/secret-store';
import { parseEnv } from '../shared/config';
import { silentLogger } from '../shared/logger';
import { createDynamoClients } from '../shared/store/dynamo-client';
import type { Figure } from './report';
import type { BenchStack } from './support/stack';

export interface FullPass {
  /** Tunnels the pass read. */
  tunnels: number;
  ms: number;
  /** Read units over the pass, less the stack's own steady reads meanwhile. */
  readUnits: number;
  /** Tunnels or shards it could not read (each would show in the stack's log in AWS). */
  errors: number;
}

/** `steadyReadUnitsPerMin`: what the stack reads meanwhile, taken off the pass's count. */
export async function measureFullPass(stack: BenchStack, steadyReadUnitsPerMin: number): Promise<FullPass> {
  const env = parseEnv(stack.env);
  const { client, doc } = createDynamoClients({ region: env.AWS_REGION, endpoint: stack.proxy.endpoint });
  try {
    const deps = sweepDepsFromEnv(env, {
      doc,
      logger: silentLogger,
      secrets: localSecretStore(env),
      allowPrivateTargetsByDefault: true,
    });
    const from = Date.now();
    const report = await sweep(deps);
    const to = Date.now();
    await stack.proxy.answered(to, 10_000);
    const steady = (steadyReadUnitsPerMin * (to - from)) / 60_000;
    return {
      tunnels: report.tunnels,
      ms: report.ms,
      readUnits: Math.max(0, stack.proxy.usageBetween(from, to).readUnits - steady),
      errors: report.errors,
    };
  } finally {
    client.destroy();
  }
}

/** The full pass's row: its time, with time and read units per tunnel in the note. */
export function fullPassFigures(pass: FullPass | null): Figure[] {
  if (!pass || pass.tunnels === 0) return [];
  return [
    {
      id: 'dynamo.fullPass',
      label: `Status full pass over ${pass.tunnels.toLocaleString('en-US')} tunnels`,
      unit: 'ms',
      ours: pass.ms,
      openssh: null,
      note:
        `${(pass.ms / pass.tunnels).toFixed(3)} ms and ${(pass.readUnits / pass.tunnels).toFixed(2)} read units a tunnel` +
        `${pass.errors > 0 ? `, ${pass.errors} errors` : ''}; the backstop AWS runs every 6 h, run once with every idle ` +
        "tunnel held, in the bench process with the sweeper Lambda's composition",
    },
  ];
}
