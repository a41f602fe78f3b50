/**
 * The cost model's measured inputs, read from bench/results.json as `npm run bench` writes it:
 * the idle phase's DynamoDB counts (bench/dynamo-usage.ts), its full status pass
 * (bench/full-pass.ts) and memory, the API phase's units per call. Checked with zod: a results
 * file from before these were measured is refused by name.
 */
import { z } from 'zod';
import type { Measured } from './model';

const UnitsSchema = z.object({ readUnits: z.number().nonnegative(), writeUnits: z.number().nonnegative() });

const CountSchema = z.object({
  tunnels: z.number().int().positive(),
  perMinute: z.object({ readUnits: z.number().nonnegative(), writeUnits: z.number().nonnegative() }),
  sweepMs: z.number().nonnegative().nullable(),
  perLogin: UnitsSchema.extend({ logins: z.number().int().positive() }).optional(),
});

const ResultsSchema = z.object({
  mode: z.enum(['quick', 'full']),
  command: z.string(),
  startedAt: z.string(),
  figures: z.array(z.object({ id: z.string(), ours: z.number().nullable() })),
  details: z.object({
    settings: z.object({ sweepIntervalMs: z.number().positive() }),
    idle: z.object({
      ours: z.object({
        rssBefore: z.number().positive(),
        dynamo: z.array(CountSchema).min(2),
        fullPass: z.object({
          tunnels: z.number().int().positive(),
          ms: z.number().nonnegative(),
          readUnits: z.number().nonnegative(),
        }),
      }),
    }),
    api: z.object({ status: z.object({ dynamo: UnitsSchema }) }),
  }),
});

/** Where the inputs came from, for the page. */
export interface Provenance {
  mode: 'quick' | 'full';
  command: string;
  startedAt: string;
  benchSweepIntervalMs: number;
}

/** Parses results.json's content; throws naming what is missing. */
export function measuredFrom(results: unknown): { measured: Measured; provenance: Provenance } {
  const parsed = ResultsSchema.safeParse(results);
  if (!parsed.success) {
    const what = parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ');
    throw new Error(
      `bench/results.json lacks what the cost model needs (${what}): run \`npm run bench\` (or --only=idle,api)`,
    );
  }
  const { details, figures } = parsed.data;
  const memory = figures.find((f) => f.id === 'idle.memory')?.ours;
  if (memory === undefined || memory === null)
    throw new Error('bench/results.json has no idle.memory figure');
  const counts = [...details.idle.ours.dynamo].sort((a, b) => a.tunnels - b.tunnels);
  if (counts[0]?.tunnels !== 1) throw new Error('bench/results.json has no DynamoDB count at 1 tunnel');
  // Per login: the logins of every step together.
  const steps = counts.flatMap((c) => (c.perLogin ? [c.perLogin] : []));
  const logins = steps.reduce((sum, s) => sum + s.logins, 0);
  if (logins === 0) throw new Error('bench/results.json has no DynamoDB units per login');
  const perLogin = {
    readUnits: steps.reduce((sum, s) => sum + s.readUnits * s.logins, 0) / logins,
    writeUnits: steps.reduce((sum, s) => sum + s.writeUnits * s.logins, 0) / logins,
  };
  return {
    measured: {
      dynamo: counts.map((c) => ({
        tunnels: c.tunnels,
        readUnitsPerMin: c.perMinute.readUnits,
        writeUnitsPerMin: c.perMinute.writeUnits,
        sweepMs: c.sweepMs,
      })),
      perLogin,
      perApiCall: details.api.status.dynamo,
      fullPass: {
        tunnels: details.idle.ours.fullPass.tunnels,
        msPerTunnel: details.idle.ours.fullPass.ms / details.idle.ours.fullPass.tunnels,
        readUnitsPerTunnel: details.idle.ours.fullPass.readUnits / details.idle.ours.fullPass.tunnels,
      },
      memoryPerTunnelKb: memory,
      baselineRssBytes: details.idle.ours.rssBefore,
      sweepIntervalMs: details.settings.sweepIntervalMs,
    },
    provenance: {
      mode: parsed.data.mode,
      command: parsed.data.command,
      startedAt: parsed.data.startedAt,
      benchSweepIntervalMs: details.settings.sweepIntervalMs,
    },
  };
}
