import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  identificationForLog,
  readClientIdentification,
  serverIdentificationLine,
  skipRepeatedIdentification,
} from '../../../fargate/reverse/client-identification';
import { waitFor } from '../../helpers/wait-for';

/** A server on port 0 whose accepted sockets go to `onSocket`; the client end is returned. */
async function pair(onSocket: (socket: Socket) => void): Promise<{ server: Server; client: Socket }> {
  const server = createServer(onSocket);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('no address');
  const client = connect(address.port, '127.0.0.1');
  client.on('error', () => {});
  await once(client, 'connect');
  return { server, client };
}

/** Everything a socket yields from now until it has `length` bytes. */
async function readBytes(socket: Socket, length: number): Promise<Buffer> {
  let got = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    got = Buffer.concat([got, chunk]);
  });
  socket.resume();
  await waitFor(() => got.length >= length, 5_000, { what: `${length} bytes` });
  return got;
}

describe('readClientIdentification', () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  async function reading() {
    const calls: (string | undefined)[] = [];
    let accepted: Socket | undefined;
    const { server, client } = await pair((socket) => {
      accepted = socket;
      readClientIdentification(socket, (identification) => calls.push(identification));
    });
    servers.push(server);
    sockets.push(client);
    await waitFor(() => accepted, 5_000, { what: 'accepted' });
    if (!accepted) throw new Error('not accepted');
    sockets.push(accepted);
    return { client, accepted, calls };
  }

  it('reads the line once, sent in pieces, and puts back every byte read for whoever reads next', async () => {
    const { client, accepted, calls } = await reading();
    const sent = Buffer.from('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\u0000\u0000\u0001\u0014kexinit...');
    client.write(sent.subarray(0, 5));
    await waitFor(() => accepted.bytesRead >= 5, 5_000, { what: 'the first piece read' });
    expect(calls).toEqual([]);
    client.write(sent.subarray(5));
    await waitFor(() => calls.length > 0, 5_000, { what: 'the identification' });
    expect(calls).toEqual(['SSH-2.0-OpenSSH_9.2p1 Debian-2']);
    expect(accepted.isPaused()).toBe(true);
    expect(await readBytes(accepted, sent.length)).toEqual(sent);
    expect(calls).toHaveLength(1);
  });

  it('gives up on a line longer than RFC 4253 allows (255 bytes), still putting every byte back', async () => {
    const { client, accepted, calls } = await reading();
    const sent = Buffer.alloc(300, 'A');
    client.write(sent);
    await waitFor(() => calls.length > 0, 5_000, { what: 'the verdict' });
    expect(calls).toEqual([undefined]);
    expect(await readBytes(accepted, sent.length)).toEqual(sent);
  });

  it('never calls back when the client goes before its line ends', async () => {
    const { client, accepted, calls } = await reading();
    client.end('SSH-2.0-half');
    await once(accepted, 'close');
    expect(calls).toEqual([]);
    expect(accepted.listenerCount('data')).toBe(0);
  });
});

describe('skipRepeatedIdentification', () => {
  it('drops the first write when it is our line again, and only that one', async () => {
    const line = serverIdentificationLine('Tunnelkeeper');
    expect(line.toString()).toBe('SSH-2.0-Tunnelkeeper\r\n');
    let accepted: Socket | undefined;
    const { server, client } = await pair((socket) => {
      accepted = socket;
    });
    try {
      await waitFor(() => accepted, 5_000, { what: 'accepted' });
      if (!accepted) throw new Error('not accepted');
      accepted.write(line);
      skipRepeatedIdentification(accepted, line);
      expect(accepted.write(Buffer.from(line))).toBe(true); // dropped
      accepted.write(line); // later writes pass, even the same bytes
      accepted.write('rest');
      expect((await readBytes(client, line.length * 2 + 4)).toString()).toBe(`${line}${line}rest`);
    } finally {
      client.destroy();
      accepted?.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('lets any other first write through', async () => {
    let accepted: Socket | undefined;
    const { server, client } = await pair((socket) => {
      accepted = socket;
    });
    try {
      await waitFor(() => accepted, 5_000, { what: 'accepted' });
      if (!accepted) throw new Error('not accepted');
      skipRepeatedIdentification(accepted, serverIdentificationLine('Tunnelkeeper'));
      accepted.write('SSH-2.0-Other\r\n');
      expect((await readBytes(client, 15)).toString()).toBe('SSH-2.0-Other\r\n');
    } finally {
      client.destroy();
      accepted?.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('identificationForLog', () => {
  it.each([
    ['SSH-2.0-OpenSSH_9.2p1 Debian-2', 'SSH-2.0-OpenSSH_9.2p1 Debian-2'],
    ['SSH-2.0-\u001b[31mred\u00ff', 'SSH-2.0-?[31mred?'],
    [`SSH-2.0-${'x'.repeat(200)}`, `SSH-2.0-${'x'.repeat(72)}`],
    [undefined, undefined],
  ])('shows %j as %j', (input, shown) => {
    expect(identificationForLog(input)).toBe(shown);
  });
});
