import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ANSWER_SLOT_BYTES, AppendClient, DIRECT_WRITE_MAX, RECONNECT_AFTER_MS } from '../../../src/agent/append-client.js';
import { ALONE_MIN_REQUESTS, ALONE_WINDOW_MS, DIRECT_WHILE_ALONE_MS, type AppendAnswer } from '../../../src/agent/append-protocol.js';
import { AppendServer } from '../../../src/agent/append-server.js';
import { loadConfig, type AgentConfig } from '../../../src/agent/config.js';
import { silentLog } from '../../../src/agent/log.js';
import { Outbox } from '../../../src/agent/outbox.js';
import { RowRejectedError } from '../../../src/agent/row-validation.js';
import { WriteBuffer } from '../../../src/agent/write-buffer.js';
import { EVENTS_STREAM, sleep, startDaemon, storedIds, writeConfig, type RunningDaemon } from './agent-fixture.js';

/** Group commit through the daemon's append socket, on real SQLite files, with the real daemon process. */
let dir: string;
let configFile: string;
let config: AgentConfig;
let n = 0;
const cleanups: (() => unknown)[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'append-socket-'));
  // The writer refuses connections: appends never wait on PostgreSQL, so none is needed here.
  configFile = writeConfig(path.join(dir, 'agent.json'), { writerUrl: 'postgres://agent:pw@127.0.0.1:1/app', streams: { events: EVENTS_STREAM } });
  config = loadConfig(configFile);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function freshBuffer(): string {
  n += 1;
  const file = path.join(dir, `b${n}.db`);
  Outbox.open(file).close();
  return file;
}

async function serve(file: string, options: { busyTimeoutMs?: number } = {}): Promise<{ server: AppendServer; outbox: Outbox }> {
  const outbox = Outbox.open(file, options);
  const server = await AppendServer.listen({ outbox, socketPath: `${file}.sock`, streams: () => config.streams, log: silentLog });
  cleanups.push(() => outbox.close(), () => server?.close());
  return { server: server!, outbox };
}

/** A raw protocol client (asynchronous, so that it can talk to a server in this same process). */
async function connect(socketPath: string): Promise<{ send(line: string): void; answers: AppendAnswer[]; next(): Promise<AppendAnswer>; closed: Promise<void> }> {
  const socket = net.createConnection(socketPath);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  cleanups.push(() => socket.destroy());
  const answers: AppendAnswer[] = [];
  const waiting: ((a: AppendAnswer) => void)[] = [];
  createInterface({ input: socket }).on('line', (line) => {
    const answer = JSON.parse(line) as AppendAnswer;
    const w = waiting.shift();
    if (w) w(answer);
    else answers.push(answer);
  });
  return {
    send: (line) => socket.write(`${line}\n`),
    answers,
    next: () => new Promise((resolve) => (answers.length > 0 ? resolve(answers.shift()!) : waiting.push(resolve))),
    closed: new Promise((resolve) => socket.on('close', () => resolve())),
  };
}

/** `count` connections the server has taken up: each has had one request (a row 'warm-<i>') answered. */
async function connected(count: number, socketPath: string): Promise<Awaited<ReturnType<typeof connect>>[]> {
  const clients = [];
  for (let i = 0; i < count; i++) {
    const client = await connect(socketPath);
    client.send(request(0, [{ id: `warm-${i}` }]));
    await client.next();
    clients.push(client);
  }
  return clients;
}

const request = (n: number, rows: unknown[], stream = 'events') => JSON.stringify({ n, stream, rows: rows.map((r) => JSON.stringify(r)) });

async function daemon(file: string): Promise<RunningDaemon> {
  const running = await startDaemon(['--buffer', file, '--config', configFile]);
  cleanups.push(() => running.child.kill('SIGKILL'));
  return running;
}

describe('the append socket (AppendServer)', () => {
  it('requests that arrive while a commit is being written share the next commit, and each is answered after it', async () => {
    const file = freshBuffer();
    const { server } = await serve(file);
    const clients = await connected(8, `${file}.sock`);
    const before = { ...server.stats };
    clients.forEach((c, i) => c.send(request(i + 1, [{ id: `g${i}`, n: i }])));
    const answers = await Promise.all(clients.map((c) => c.next()));
    expect(answers).toEqual(clients.map((_, i) => ({ n: i + 1, ids: [`g${i}`] })));
    expect({ commits: server.stats.commits - before.commits, requests: server.stats.requests - before.requests }).toEqual({ commits: 1, requests: 8 });
    expect(storedIds(file).filter((id) => id.startsWith('g')).sort()).toEqual(clients.map((_, i) => `g${i}`).sort());
  });

  it("a refused row stops only its own request, with appendMany's rules, inside a shared commit", async () => {
    const file = freshBuffer();
    const { server } = await serve(file);
    const [a, b, c] = await connected(3, `${file}.sock`);
    const commitsBefore = server.stats.commits;
    a!.send(request(1, [{ id: 'a1' }, { id: 'a2', colour: 'red' }, { id: 'a3' }]));
    b!.send(request(1, [{ id: 'b1' }, { id: 'b2' }]));
    c!.send(request(1, [{ id: 'b1', n: 5 }], 'events')); // b1 with another payload, in the same commit
    expect(await a!.next()).toEqual({ n: 1, ids: ['a1'], rejected: { index: 1, message: "field 'colour' is not a column of stream 'events' (columns: id, body, n)" } });
    expect(await b!.next()).toEqual({ n: 1, ids: ['b1', 'b2'] });
    expect(await c!.next()).toEqual({ n: 1, ids: [], rejected: { index: 0, message: "id 'b1' is already in the buffer for stream 'events' with a different payload" } });
    expect(server.stats.commits - commitsBefore).toBe(1);
    expect(storedIds(file).filter((id) => !id.startsWith('warm'))).toEqual(['a1', 'b1', 'b2']);
    a!.send(request(2, [{ id: 'x' }], 'nope'));
    expect(await a!.next()).toEqual({ n: 2, ids: [], rejected: { index: 0, message: "unknown stream 'nope': add it to the config's streams" } });
  });

  it('a commit that fails answers every caller in it with the error: nothing of theirs was committed', async () => {
    const file = freshBuffer();
    await serve(file, { busyTimeoutMs: 100 });
    const holder = new Database(file);
    holder.exec('BEGIN IMMEDIATE'); // another process's write lock, held past busyTimeoutMs
    const [a, b] = await Promise.all([1, 2].map(() => connect(`${file}.sock`)));
    a!.send(request(1, [{ id: 'f1' }]));
    b!.send(request(7, [{ id: 'f2' }]));
    const answers = await Promise.all([a!.next(), b!.next()]);
    holder.exec('ROLLBACK');
    holder.close();
    expect(answers.map((x) => x.n)).toEqual([1, 7]);
    for (const answer of answers) expect((answer as { error: string }).error).toMatch(/stayed locked by another process for 100 ms/);
    expect(storedIds(file)).toEqual([]);
  });

  it('a malformed request is answered with an error and its connection closed', async () => {
    const file = freshBuffer();
    await serve(file);
    for (const [line, reason] of [
      ['{"n": 1, "stream": "events", "rows": [{"id": "a"}]}', "request field 'rows' must be an array of strings"],
      ['not json', 'request is not JSON'],
    ] as const) {
      const client = await connect(`${file}.sock`);
      client.send(line);
      const answer = (await client.next()) as { error: string };
      expect(answer.error).toContain(`bad request: ${reason}`);
      await client.closed;
    }
    expect(storedIds(file)).toEqual([]);
  });

  it('a second server on a live socket steps aside; a path that is not a socket is refused, naming appendSocket', async () => {
    const file = freshBuffer();
    const { outbox } = await serve(file);
    expect(await AppendServer.listen({ outbox, socketPath: `${file}.sock`, streams: () => config.streams, log: silentLog })).toBeUndefined();
    const notSocket = path.join(dir, 'plain-file');
    writeFileSync(notSocket, 'keep me');
    await expect(AppendServer.listen({ outbox, socketPath: notSocket, streams: () => config.streams, log: silentLog })).rejects.toThrow(
      `appendSocket: ${notSocket} exists and is not a socket: remove it or choose another path`,
    );
  });
});

describe('"alone": a process appending by itself is told it may append directly', () => {
  it(`after ${ALONE_MIN_REQUESTS} requests in ${ALONE_WINDOW_MS} ms from one connection and none from another; never while two connections append`, async () => {
    const file = freshBuffer();
    await serve(file);
    const [a, b] = await Promise.all([connect(`${file}.sock`), connect(`${file}.sock`)]);
    let n = 0;
    // a appends by itself until an answer says alone (its requests must fall within the window: on a slow machine later)
    const untilAlone = async (): Promise<number> => {
      for (let sent = 1; sent <= 1000; sent++) {
        a!.send(request(++n, [{ id: `a${n}` }]));
        const answer = await a!.next();
        if ('alone' in answer) {
          expect(answer).toEqual({ n, ids: [`a${n}`], alone: true });
          return sent;
        }
      }
      throw new Error('never alone');
    };
    expect(await untilAlone()).toBeGreaterThanOrEqual(ALONE_MIN_REQUESTS); // not before it sent that many
    // b appends too: while both do, neither is alone
    for (let k = 0; k < 10; k++) {
      b!.send(request(++n, [{ id: `b${n}` }]));
      a!.send(request(++n, [{ id: `a${n}` }]));
      expect([await a!.next(), await b!.next()].filter((x) => 'alone' in x)).toEqual([]);
    }
    await sleep(ALONE_WINDOW_MS + 20); // b fell silent: a is alone again once it has sent enough
    expect(await untilAlone()).toBeGreaterThanOrEqual(1);  });
});

describe('WriteBuffer.append through the daemon', () => {
  it('goes through the daemon when it serves the socket, directly while it is down, and back to it when it returns', async () => {
    const file = freshBuffer();
    let agent = await daemon(file);
    const buffer = WriteBuffer.open({ bufferPath: file, config });
    cleanups.push(() => buffer.close());
    expect(buffer.append('events', { id: 'd1', n: 1 })).toBe('d1');
    expect(buffer.appendMany('events', [{ id: 'd2' }, { id: 'd3' }, { id: 'd4', colour: 'red' }])).toEqual({
      ids: ['d2', 'd3'],
      rejected: { index: 2, error: new RowRejectedError("field 'colour' is not a column of stream 'events' (columns: id, body, n)") },
    });
    expect(() => buffer.append('events', { id: 'd1', n: 2 })).toThrow("id 'd1' is already in the buffer for stream 'events' with a different payload");
    expect(() => buffer.append('events', { id: 1n })).toThrow(/^row cannot be serialized to JSON/); // refused before any request
    expect(buffer.append('events', { id: 'd1', n: 1 })).toBe('d1'); // acknowledged again
    await agent.kill();
    expect(buffer.append('events', { id: 'd5' })).toBe('d5'); // the connection is gone: directly into the file
    agent = await daemon(file); // replaces the stale socket the killed daemon left
    await sleep(RECONNECT_AFTER_MS);
    expect(buffer.append('events', { id: 'd6' })).toBe('d6');
    expect(await agent.stop()).toEqual({ commits: 1, requests: 1, rows: 1 });
    expect(storedIds(file)).toEqual(['d1', 'd2', 'd3', 'd5', 'd6']);
  });

  it('a process appending alone goes directly for a while, and back to the daemon when another writer holds the lock or the while is over', async () => {
    const file = freshBuffer();
    const agent = await daemon(file);
    const buffer = WriteBuffer.open({ bufferPath: file, config });
    cleanups.push(() => buffer.close());
    const client = () => (buffer as unknown as { appendClient: AppendClient | undefined }).appendClient;
    const ids: string[] = [];
    let throughDaemon = 0; // the appends made while the client was not told it is alone
    const append = (id: string) => {
      if (!client()?.appendsDirectly) throughDaemon += 1;
      ids.push(buffer.append('events', { id }));
    };
    const untilAlone = (prefix: string) => {
      for (let i = 0; !client()?.appendsDirectly; i++) {
        if (i === 1000) throw new Error('the daemon never answered alone');
        append(`${prefix}${i}`);
      }
    };
    untilAlone('first-');
    append('direct-1');
    // another process holds the write lock: the direct append waits for it, then this process asks the daemon again
    const holder = spawn('python3', ['-c', `import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE"); print("locked", flush=True); time.sleep(0.2); db.execute("ROLLBACK")`, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => void holder.kill());
    await new Promise((resolve) => holder.stdout!.once('data', resolve));
    append('while-locked');
    expect(client()!.appendsDirectly).toBe(false);
    append('after-lock');
    untilAlone('second-');
    await sleep(DIRECT_WHILE_ALONE_MS); // the while is over: the daemon is asked again
    expect(client()!.appendsDirectly).toBe(false);
    append('later');
    const stats = await agent.stop();
    expect(storedIds(file)).toEqual(ids);
    expect(stats.requests).toBe(throughDaemon); // exactly those went through the daemon, the others directly
    expect(throughDaemon).toBeLessThan(ids.length);
  });

  it('in the daemon’s own process appends go directly (a caller must not wait for its own thread)', async () => {
    const file = freshBuffer();
    const withDaemon = WriteBuffer.open({ bufferPath: file, config });
    const running = withDaemon.startDaemon();
    const server = (await running.appendServer)!;
    const other = WriteBuffer.open({ bufferPath: file, config });
    cleanups.push(() => withDaemon.close(), () => running.stop(), () => other.close());
    expect(withDaemon.append('events', { id: 'own-1' })).toBe('own-1');
    expect(other.append('events', { id: 'own-2' })).toBe('own-2');
    await sleep(0); // a request, had one been sent, would be read now
    expect(server.stats.requests).toBe(0);
    expect(storedIds(file)).toEqual(['own-1', 'own-2']);
  });

  it('appendSocket false: neither served nor used', async () => {
    const file = freshBuffer();
    const off = { ...config, appendSocket: false as const };
    const buffer = WriteBuffer.open({ bufferPath: file, config: off });
    const running = buffer.startDaemon();
    cleanups.push(() => buffer.close(), () => running.stop());
    expect(await running.appendServer).toBeUndefined();
    expect(buffer.append('events', { id: 'off-1' })).toBe('off-1');
  });
});

describe('the synchronous client (AppendClient) on the real daemon', () => {
  it('a request too long to write from the calling thread and an answer too long for the shared slot still go through', async () => {
    const file = freshBuffer();
    const agent = await daemon(file);
    const buffer = WriteBuffer.open({ bufferPath: file, config });
    cleanups.push(() => buffer.close());
    const body = 'x'.repeat(DIRECT_WRITE_MAX); // one row longer than the calling thread writes itself
    expect(buffer.append('events', { id: 'long-1', body })).toBe('long-1');
    // an answer of 2,000 ids of 40 characters: longer than the shared answer slot
    const ids = Array.from({ length: 2000 }, (_, i) => `many-${String(i).padStart(34, '0')}`);
    expect(JSON.stringify(ids).length).toBeGreaterThan(ANSWER_SLOT_BYTES);
    expect(buffer.appendMany('events', ids.map((id) => ({ id })))).toEqual({ ids });
    expect(buffer.append('events', { id: 'after' })).toBe('after'); // and the next short one as usual
    expect(await agent.stop()).toEqual({ commits: 3, requests: 3, rows: 2002 });
    expect(storedIds(file)).toEqual(['long-1', ...ids, 'after']);
  });

  it('a connection given up before it was up is closed, not left open (busyTimeoutMs 0: every connect misses its deadline)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'give-up-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const socketPath = path.join(dir, 'x.sock');
    let open = 0;
    const server = net.createServer((socket) => {
      open += 1;
      socket.on('close', () => (open -= 1));
      socket.on('error', () => undefined);
      socket.resume();
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const client = new AppendClient(socketPath, 0);
    cleanups.push(() => client.close());
    for (let i = 0; i < 4; i++) {
      expect(client.append('events', ['{"id":"x"}'])).toBeUndefined(); // directly: no time to wait for the daemon
      await sleep(RECONNECT_AFTER_MS + 50); // the next append tries to connect again
    }
    expect(open).toBe(0);
  });

  it('a daemon that takes the request and never answers: the append goes directly after busyTimeoutMs', async () => {
    const file = freshBuffer();
    // accepts connections (the kernel does, even while this thread is blocked), reads and never answers
    const silent = net.createServer((socket) => socket.resume());
    await new Promise<void>((resolve) => silent.listen(`${file}.sock`, resolve));
    cleanups.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const buffer = WriteBuffer.open({ bufferPath: file, config: { ...config, busyTimeoutMs: 200 } });
    cleanups.push(() => buffer.close());
    expect(buffer.append('events', { id: 'late-1' })).toBe('late-1');
    expect(buffer.append('events', { id: 'late-2' })).toBe('late-2'); // directly, without waiting again
    expect(storedIds(file)).toEqual(['late-1', 'late-2']);
  });

  it('an answer that is not the daemon\'s (not JSON, no request number, no ids, ids not matching the rows): append and appendAsync go directly at once', async () => {
    const file = freshBuffer();
    // $n: the request's own number, so that only what is missing or wrong in the answer can send it directly
    const replies = ['not json', '{"ids":["x"]}', 'null', '{"n":$n}', '{"n":$n,"ids":[1]}', '{"n":$n,"ids":[],"rejected":{"index":"0"}}'];
    // well-formed, but the ids do not account for the one row sent: taken as acknowledgements, nothing would be stored
    replies.push('{"n":$n,"ids":[]}', '{"n":$n,"ids":["x","y"]}', '{"n":$n,"ids":[],"rejected":{"index":1,"message":"m"}}');
    // another process: the synchronous append blocks this thread, which could not answer it
    const impostor = spawn(
      process.execPath,
      [
        '-e',
        `let connection = 0; const replies = ${JSON.stringify(replies)};
         require('node:net').createServer((socket) => {
           const reply = replies[connection++ % replies.length];
           socket.on('data', (data) => socket.write(reply.replace('$n', JSON.parse(String(data).split('\\n')[0]).n) + '\\n'));
           socket.on('error', () => undefined);
         }).listen(${JSON.stringify(`${file}.sock`)}, () => console.log('listening'));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(() => void impostor.kill());
    await new Promise((resolve) => impostor.stdout!.once('data', resolve));
    // busyTimeoutMs far longer than the test: only the answer's check can send these appends directly in time
    const buffer = WriteBuffer.open({ bufferPath: file, config: { ...config, busyTimeoutMs: 60_000 } });
    cleanups.push(() => buffer.close());
    const ids: string[] = [];
    for (let i = 0; i < replies.length; i++) {
      ids.push(buffer.append('events', { id: `sync-${i}` }), await buffer.appendAsync('events', { id: `async-${i}` }));
      await sleep(RECONNECT_AFTER_MS); // both clients connect again (to the impostor's next reply)
    }
    expect(ids).toEqual(replies.flatMap((_, i) => [`sync-${i}`, `async-${i}`]));
    expect(storedIds(file)).toEqual(ids);
  }, 30_000);
});

describe('WriteBuffer.appendAsync', () => {
  it('many appends in flight from one process share commits, each resolves with its id once committed', async () => {
    const file = freshBuffer();
    const { server } = await serve(file);
    const buffer = WriteBuffer.open({ bufferPath: file, config });
    cleanups.push(() => buffer.close());
    expect(await buffer.appendAsync('events', { id: 'warm' })).toBe('warm'); // connected
    const before = { ...server.stats };
    const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => buffer.appendAsync('events', { id: `a${i}`, n: i })));
    expect(ids).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`));
    expect(server.stats.requests - before.requests).toBe(50);
    expect(server.stats.commits - before.commits).toBeLessThan(50);
    await expect(buffer.appendAsync('events', { id: 'a1', n: 2 })).rejects.toThrow("id 'a1' is already in the buffer for stream 'events' with a different payload");
    expect(await buffer.appendManyAsync('events', [{ id: 'b1' }, { id: 'b2', colour: 'red' }])).toEqual({
      ids: ['b1'],
      rejected: { index: 1, error: new RowRejectedError("field 'colour' is not a column of stream 'events' (columns: id, body, n)") },
    });
    expect(storedIds(file).sort()).toEqual(['warm', ...ids, 'b1'].sort());
  });

  it('goes directly while no daemon serves the socket, and when the daemon never answers (after busyTimeoutMs)', async () => {
    const file = freshBuffer();
    const buffer = WriteBuffer.open({ bufferPath: file, config: { ...config, busyTimeoutMs: 200 } });
    cleanups.push(() => buffer.close());
    expect(await buffer.appendAsync('events', { id: 'none-1' })).toBe('none-1');
    await expect(buffer.appendAsync('events', { id: 1n })).rejects.toThrow(/^row cannot be serialized to JSON/);
    const silent = net.createServer((socket) => socket.resume()); // reads and never answers
    await new Promise<void>((resolve) => silent.listen(`${file}.sock`, resolve));
    cleanups.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    await sleep(RECONNECT_AFTER_MS);
    expect(await Promise.all([buffer.appendAsync('events', { id: 'silent-1' }), buffer.appendAsync('events', { id: 'silent-2' })])).toEqual(['silent-1', 'silent-2']);
    expect(storedIds(file)).toEqual(['none-1', 'silent-1', 'silent-2']);
  });

  it('in the daemon’s own process it goes directly too', async () => {
    const file = freshBuffer();
    const withDaemon = WriteBuffer.open({ bufferPath: file, config });
    const running = withDaemon.startDaemon();
    const server = (await running.appendServer)!;
    cleanups.push(() => withDaemon.close(), () => running.stop());
    expect(await withDaemon.appendAsync('events', { id: 'own-async' })).toBe('own-async');
    expect(server.stats.requests).toBe(0);
  });
});
