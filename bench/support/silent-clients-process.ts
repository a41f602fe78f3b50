/**
 * The silent flood as a process of its own (its connects and closes cost the attacker's CPU, not
 * the gateway's, as they would in the wild). Driven over IPC by `silent-clients-remote.ts`:
 * `start` with the options, `stop` to stop reopening and report every connection's lifetime once
 * the gateway has closed them (or the drain deadline passed). Exits when its parent goes away.
 */
import { z } from 'zod';
import { SilentClients } from './silent-clients';

const StartSchema = z.object({
  type: z.literal('start'),
  port: z.number().int().min(1).max(65535),
  sources: z.array(z.string()).min(1),
  count: z.number().int().min(1),
  opensPerSecond: z.number().positive(),
  maxOpens: z.number().int().min(1),
});
const StopSchema = z.object({ type: z.literal('stop'), drainTimeoutMs: z.number().int().min(0) });
const MessageSchema = z.discriminatedUnion('type', [StartSchema, StopSchema]);

let clients: SilentClients | undefined;
let progress: NodeJS.Timeout | undefined;
const send = (message: unknown) => process.send?.(message);

process.on('disconnect', () => {
  clients?.destroy();
  process.exit(0);
});

process.on('message', (raw) => {
  const parsed = MessageSchema.safeParse(raw);
  if (!parsed.success) {
    send({ type: 'error', error: parsed.error.message });
    return;
  }
  const message = parsed.data;
  if (message.type === 'start') {
    clients = new SilentClients(message);
    clients.start();
    progress = setInterval(
      () => send({ type: 'progress', opened: clients?.opened, open: clients?.open }),
      100,
    );
    return;
  }
  const running = clients;
  if (!running) return;
  clearInterval(progress);
  running.stopReopening();
  const stoppedAt = performance.now();
  void running.waitAllClosed(message.drainTimeoutMs).then(() => {
    const lastClose = running.lives.reduce((last, l) => Math.max(last, l.closedAt ?? 0), stoppedAt);
    send({
      type: 'result',
      opened: running.opened,
      failedConnects: running.failedConnects,
      lifetimesMs: running.lives.flatMap((l) => (l.closedAt === undefined ? [] : [l.closedAt - l.openedAt])),
      drainMs: lastClose - stoppedAt,
      leftOpen: running.open,
    });
    running.destroy();
    setTimeout(() => process.exit(0), 100);
  });
});

send({ type: 'ready' });
