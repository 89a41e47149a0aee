import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpProxy } from '../../../src/local/tcp-proxy.js';

/** An echo server that logs what happens to it into a shared, ordered log. */
async function echoServer(log: string[], name = 'server'): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    log.push(`${name} connection`);
    socket.on('data', (data) => {
      log.push(`${name} got ${data.toString()}`);
      socket.write(data);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Many round trips on a direct connection to the server: had the proxy forwarded anything meanwhile, the server
 * would have logged it long before these are done (each needs several turns of both event loops).
 */
async function roundTrips(port: number, n = 20): Promise<void> {
  const direct = await connect(port);
  for (let i = 0; i < n; i++) {
    const reply = nextData(direct);
    direct.write(`rt${i}`);
    await reply;
  }
  direct.destroy();
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

function nextData(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      socket.off('error', onError);
      resolve(d.toString());
    };
    const onError = (e: Error) => {
      socket.off('data', onData);
      reject(e);
    };
    socket.once('data', onData);
    socket.once('error', onError);
  });
}

function closed(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let error = 'none';
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.once('close', () => resolve(error));
  });
}

describe('TcpProxy (real sockets on loopback)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup() {
    const log: string[] = [];
    const server = await echoServer(log);
    const proxy = await TcpProxy.start({ target: () => server.port, name: 'test' });
    cleanups.push(server.close, () => proxy.close());
    return { log, server, proxy };
  }

  it('forwards both ways while the path is open', async () => {
    const { proxy } = await setup();
    const socket = await connect(proxy.port);
    socket.write('hello');
    expect(await nextData(socket)).toBe('hello');
    expect(proxy.connections).toBe(1);
    socket.destroy();
  });

  it("cut('drop') holds an open connection's data until heal, then delivers it", async () => {
    const { log, server, proxy } = await setup();
    const socket = await connect(proxy.port);
    socket.write('before');
    expect(await nextData(socket)).toBe('before');
    proxy.cut('drop');
    expect(proxy.state).toBe('drop');
    const echoed = nextData(socket);
    socket.write('during');
    await roundTrips(server.port);
    expect(log).not.toContain('server got during');
    log.push('heal');
    proxy.heal();
    expect(await echoed).toBe('during');
    expect(log.indexOf('heal')).toBeLessThan(log.indexOf('server got during'));
    socket.destroy();
  });

  it("a connection made during cut('drop') reaches the server only after heal", async () => {
    const { log, server, proxy } = await setup();
    proxy.cut('drop');
    const socket = await connect(proxy.port); // accepted by the proxy, but nothing behind it answers
    socket.write('ping');
    await roundTrips(server.port);
    const direct = log.filter((l) => !/rt\d+/.test(l) && l !== 'server connection');
    expect(direct).toEqual([]);
    expect(log.filter((l) => l === 'server connection')).toHaveLength(1); // the round trips' own connection
    log.length = 0;
    log.push('heal');
    proxy.heal();
    expect(await nextData(socket)).toBe('ping');
    expect(log).toEqual(['heal', 'server connection', 'server got ping']);
    socket.destroy();
  });

  it("cut('reset') closes open connections at once and refuses new ones until heal", async () => {
    const { proxy } = await setup();
    const socket = await connect(proxy.port);
    socket.write('x');
    await nextData(socket);
    const gone = closed(socket);
    proxy.cut('reset');
    expect(await gone).toBe('ECONNRESET');
    expect(proxy.connections).toBe(0);
    const refused = net.connect({ host: '127.0.0.1', port: proxy.port });
    expect(await closed(refused)).toMatch(/ECONNRESET|EPIPE|none/);
    proxy.heal();
    const again = await connect(proxy.port);
    again.write('back');
    expect(await nextData(again)).toBe('back');
    again.destroy();
  });

  it('reads the target for every new connection (a rebuilt node may move)', async () => {
    const log: string[] = [];
    const a = await echoServer(log, 'a');
    const b = await echoServer(log, 'b');
    let target = a.port;
    const proxy = await TcpProxy.start({ target: () => target });
    cleanups.push(a.close, b.close, () => proxy.close());
    const first = await connect(proxy.port);
    first.write('1');
    await nextData(first);
    target = b.port;
    const second = await connect(proxy.port);
    second.write('2');
    await nextData(second);
    expect(log).toEqual(['a connection', 'a got 1', 'b connection', 'b got 2']);
    first.destroy();
    second.destroy();
  });

  it('refuses a bad cut mode, naming it', async () => {
    const { proxy } = await setup();
    expect(() => proxy.cut('sever' as never)).toThrow(/cut mode must be 'drop' or 'reset', got "sever"/);
  });
});
