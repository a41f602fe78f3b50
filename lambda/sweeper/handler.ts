/**
 * The sweeper Lambda (EventBridge schedules and the table's stream): builds its dependencies once
 * per cold start and runs one pass per invocation. Overlapping invocations are safe: every write is
 * conditional. Deliveries stop in time for the sweep to settle before the Lambda times out. What
 * each sweep saw goes to CloudWatch as embedded-metric log lines (docs/metrics.md).
 */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { z } from 'zod';
import { parseEnv } from '../../shared/config';
import { createLogger } from '../../shared/logger';
import { EmfReporter } from '../../shared/metrics/emf';
import { OperatorMetrics } from '../../shared/metrics/operator-metrics';
import { AwsSecretStore } from '../../shared/secrets/aws-secret-store';
import { createDynamoClients } from '../../shared/store/dynamo-client';
import { changedTunnels, keyOfRecord } from '../../shared/store/table-changes';
import { sweepDepsFromEnv } from './compose';
import { newSweeperId, type SweepDeps, type SweepReport, sweep, sweepDue, sweepTunnels } from './sweep';

/** Left for settling claims and the final log line when the deadline comes. */
const SETTLE_RESERVE_MS = 10_000;

/** The part of the Lambda context we use. */
export interface SweeperContext {
  getRemainingTimeInMillis(): number;
}

let built: { deps: SweepDeps; emf: EmfReporter } | undefined;

function build(): { deps: SweepDeps; emf: EmfReporter } {
  const env = parseEnv(process.env);
  const logger = createLogger(env.LOG_LEVEL);
  const { doc } = createDynamoClients({ region: env.AWS_REGION, endpoint: env.DYNAMODB_ENDPOINT });
  // The alert channel key only (the stack grants nothing else): read at the first channel send.
  const secrets = new AwsSecretStore(new SecretsManagerClient({ region: env.AWS_REGION }), env.SECRET_PREFIX);
  const metrics = new OperatorMetrics();
  const emf = new EmfReporter(metrics, 'sweeper', (line) => process.stdout.write(line));
  // One id per Lambda instance: its claims survive from one invocation to the next.
  return {
    deps: { ...sweepDepsFromEnv(env, { doc, logger, secrets }), sweeperId: newSweeperId(), metrics },
    emf,
  };
}

/**
 * What an invocation asks for: the schedules name their pass (`{ "pass": "due" }` a minute,
 * `{ "pass": "full" }` every six hours); the table's stream sends records, whose tunnels are
 * evaluated. Anything else (an invocation by hand) runs a full pass.
 */
const SweeperEventSchema = z.union([
  z.object({ pass: z.enum(['due', 'full']) }),
  z.object({ Records: z.array(z.object({ dynamodb: z.object({ Keys: z.unknown() }).optional() })) }),
]);

export const handler = async (event: unknown, context?: SweeperContext): Promise<SweepReport> => {
  built ??= build();
  const budget = context ? context.getRemainingTimeInMillis() - SETTLE_RESERVE_MS : undefined;
  const signal = budget === undefined ? undefined : AbortSignal.timeout(Math.max(1_000, budget));
  const deps = { ...built.deps, signal };
  const parsed = SweeperEventSchema.safeParse(event);
  const report = !parsed.success
    ? await sweep(deps)
    : 'pass' in parsed.data
      ? await (parsed.data.pass === 'due' ? sweepDue(deps) : sweep(deps))
      : await sweepTunnels(
          deps,
          changedTunnels(parsed.data.Records.map((r) => keyOfRecord(r.dynamodb?.Keys))),
        );
  await built.emf.report();
  // A failed invocation is what the error alarm counts; the next run retries what failed.
  if (report.errors > 0) throw new Error(`sweep finished with ${report.errors} errors; see the log`);
  return report;
};
