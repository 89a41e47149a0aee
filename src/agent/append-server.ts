import { chmodSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { ALONE_MIN_REQUESTS, ALONE_WINDOW_MS, LineReader, MAX_REQUEST_LENGTH, parseAppendRequest, type AppendAnswer, type AppendRequest } from './append-protocol.js';
import type { StreamConfig } from './config.js';
import { errorMessage, type AgentLog } from './log.js';
import type { AppendResult, Outbox } from './outbox.js';

export interface AppendServerOptions {
  readonly outbox: Outbox;
  readonly socketPath: string;
  /** The streams as configured now (a SIGHUP may change them). */
  readonly streams: () => Readonly<Record<string, StreamConfig>>;
  readonly log: AgentLog;
  /** After each group commit that stored rows (wakes the sync loop). */
  readonly onCommitted?: () => void;
}

/** Group commits so far: how many rows each fsync covered on average is rows / commits. */
export interface AppendServerStats {
  commits: number;
  requests: number;
  rows: number;
}

/** Sockets served by this process: a caller here must not block its own thread waiting for itself. */
const servedHere = new Set<string>();

export function isServedByThisProcess(socketPath: string): boolean {
  return servedHere.has(socketPath);
}

interface Waiting {
  readonly socket: net.Socket;
  readonly request: AppendRequest;
}

/**
 * The daemon's side of the append socket (protocol: append-protocol.ts): group commit. Requests that arrive
 * while a commit is being written wait in the socket buffers; the next turn of the event loop reads them
 * all and commits them in one transaction, with one fsync, and only then answers each caller. A caller is
 * never waiting on PostgreSQL: this runs between the sync loop's statements, which only await the network.
 */
export class AppendServer {
  readonly stats: AppendServerStats = { commits: 0, requests: 0, rows: 0 };
  private queue: Waiting[] = [];
  private flushScheduled = false;
  private readonly connections = new Set<net.Socket>();
  /** When each connection's last ALONE_MIN_REQUESTS requests arrived (ms), oldest first. */
  private readonly arrivals = new Map<net.Socket, number[]>();
  private socketInode: number | undefined;

  private constructor(
    private readonly options: AppendServerOptions,
    private readonly server: net.Server,
  ) {}

  /**
   * Listens on the socket; removes a stale one a killed daemon left. Resolves to undefined when another live
   * daemon already serves this socket (its appends are group-committed there).
   */
  static async listen(options: AppendServerOptions): Promise<AppendServer | undefined> {
    const server = net.createServer();
    const self = new AppendServer(options, server);
    server.on('connection', (socket) => self.accept(socket));
    if (!(await bind(server, options.socketPath))) return undefined;
    // Whoever may write the buffer file may append through the socket, and no one else.
    chmodSync(options.socketPath, statSync(options.outbox.file).mode & 0o777);
    self.socketInode = statSync(options.socketPath).ino;
    servedHere.add(options.socketPath);
    return self;
  }

  /** Stops accepting, drops open connections (their callers append directly) and removes the socket. */
  async close(): Promise<void> {
    servedHere.delete(this.options.socketPath);
    this.queue = []; // not committed: their callers see the connection close and append directly
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.connections) socket.destroy();
    await closed;
    try {
      if (statSync(this.options.socketPath).ino === this.socketInode) unlinkSync(this.options.socketPath);
    } catch {
      // already gone
    }
  }

  private accept(socket: net.Socket): void {
    this.connections.add(socket);
    socket.setEncoding('utf8');
    const reader = new LineReader();
    const onData = (chunk: string) => {
      for (const line of reader.push(chunk)) {
        const reason = this.receive(socket, line);
        if (reason !== undefined) return this.refuse(socket, reason, onData);
      }
      if (reader.pendingLength > MAX_REQUEST_LENGTH) this.refuse(socket, `request longer than ${MAX_REQUEST_LENGTH} characters`, onData);
    };
    socket.on('data', onData);
    // A caller that died: its rows are committed or not, and it is not there to be answered.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.connections.delete(socket);
      this.arrivals.delete(socket);
    });
  }

  /** Queues a request line for the next commit; returns why it is malformed, if it is. */
  private receive(socket: net.Socket, line: string): string | undefined {
    let request: AppendRequest;
    try {
      request = parseAppendRequest(line);
    } catch (error) {
      return errorMessage(error);
    }
    this.queue.push({ socket, request });
    const times = this.arrivals.get(socket);
    if (times === undefined) this.arrivals.set(socket, [Date.now()]);
    else if (times.push(Date.now()) > ALONE_MIN_REQUESTS) times.shift();
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // after this turn's reads: every request that arrived during the last commit goes into the next one
      setImmediate(() => this.flush());
    }
    return undefined;
  }

  /** The one connection that appended here lately, if it is alone (see ALONE_WINDOW_MS). */
  private connectionAlone(): net.Socket | undefined {
    const since = Date.now() - ALONE_WINDOW_MS;
    let alone: net.Socket | undefined;
    for (const [socket, times] of this.arrivals) {
      if (times.at(-1)! < since) continue;
      if (alone !== undefined) return undefined; // two appended lately: they share commits
      alone = socket;
    }
    const times = alone && this.arrivals.get(alone)!;
    return times && times.length >= ALONE_MIN_REQUESTS && times[0]! >= since ? alone : undefined;
  }

  /** A malformed request is a client bug: answered once, the rest of what the connection sends ignored, and closed. */
  private refuse(socket: net.Socket, reason: string, onData: (chunk: string) => void): void {
    socket.off('data', onData);
    this.options.log('warn', 'append socket: request refused', { reason });
    socket.end(`${JSON.stringify({ n: -1, error: `bad request: ${reason}` } satisfies AppendAnswer)}\n`);
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return; // closed meanwhile
    const streams = this.options.streams();
    let results: AppendResult[];
    try {
      results = this.options.outbox.appendGroups(batch.map(({ request }) => ({ streamName: request.stream, stream: streams[request.stream], rows: request.rows })));
    } catch (error) {
      // Nothing of the batch is committed (the transaction rolled back): each caller appends directly.
      this.options.log('error', 'append socket: group commit failed', { error: errorMessage(error), requests: batch.length });
      const answers = new Answers();
      for (const { socket, request } of batch) answers.add(socket, { n: request.n, error: errorMessage(error) });
      answers.send();
      return;
    }
    let rows = 0;
    const answers = new Answers();
    const alone = this.connectionAlone();
    batch.forEach(({ socket, request }, i) => {
      const { ids, rejected } = results[i]!;
      rows += ids.length;
      answers.add(socket, {
        n: request.n,
        ids,
        ...(rejected && { rejected: { index: rejected.index, message: rejected.error.message } }),
        ...(socket === alone && { alone: true }),
      });
    });
    answers.send();
    this.stats.commits += 1;
    this.stats.requests += batch.length;
    this.stats.rows += rows;
    if (rows > 0) this.options.onCommitted?.();
  }
}

/**
 * The answers of one commit, in request order, sent with one write per connection: a connection with several
 * requests in the commit (a client with appends in flight, appendAsync) gets them all in one system call.
 */
export class Answers {
  private readonly lines = new Map<net.Socket, string>();

  add(socket: net.Socket, value: AppendAnswer): void {
    this.lines.set(socket, `${this.lines.get(socket) ?? ''}${JSON.stringify(value)}\n`);
  }

  send(): void {
    for (const [socket, text] of this.lines) if (socket.writable) socket.write(text);
  }
}

/** Binds `server` to `socketPath`; false when a live daemon answers there. A stale socket file is replaced. */
async function bind(server: net.Server, socketPath: string): Promise<boolean> {
  try {
    await listenOn(server, socketPath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
  }
  if (await appendSocketAnswers(socketPath)) return false;
  if (!lstatSync(socketPath).isSocket()) throw new Error(`appendSocket: ${socketPath} exists and is not a socket: remove it or choose another path`);
  unlinkSync(socketPath);
  await listenOn(server, socketPath);
  return true;
}

function listenOn(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(socketPath, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** True when a process accepts connections on `socketPath` (a live daemon; a stale socket file refuses). */
export function appendSocketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createConnection(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
