import { existsSync } from 'node:fs';
import net from 'node:net';
import { RECONNECT_AFTER_MS } from './append-client.js';
import { coversRequest, DIRECT_WHILE_ALONE_MS, LineReader, MAX_REQUEST_LENGTH, parseAnswer, type AppendCommitted } from './append-protocol.js';

interface Pending {
  readonly n: number;
  readonly rows: number;
  readonly deadline: number;
  readonly resolve: (answer: AppendCommitted | undefined) => void;
}

/**
 * A connection to the daemon's append socket on the caller's own thread, for `WriteBuffer.appendAsync`: no
 * worker thread and no blocking, so one append costs the caller one write and one read on the socket. Several
 * appends may be in flight on the connection at once (the daemon answers in order; each answer carries its
 * request's `n`). `append` resolves with the daemon's answer, or undefined when the daemon cannot answer now (no
 * socket, refused, closed, no answer within `timeoutMs`, or it could not commit): the caller then appends
 * directly into the file, which is safe even if the daemon committed the rows without answering (a re-append of
 * the same row is acknowledged again, not stored twice). After a failure, appends go directly for
 * RECONNECT_AFTER_MS before the socket is tried again.
 */
export class AsyncAppendClient {
  private socket: net.Socket | undefined;
  private connecting: Promise<net.Socket | undefined> | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly reader = new LineReader();
  private lastFailureAt = -Infinity;
  private requestNumber = 0;
  /** The daemon said this process appends alone: directly until then, once nothing is in flight (see ALONE_WINDOW_MS). */
  private directUntil = -Infinity;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly socketPath: string,
    private readonly timeoutMs: number,
  ) {}

  async append(stream: string, rows: readonly string[]): Promise<AppendCommitted | undefined> {
    const n = ++this.requestNumber;
    const line = `${JSON.stringify({ n, stream, rows })}\n`;
    // Not while appends are in flight: they would be committed after this one.
    if (line.length > MAX_REQUEST_LENGTH || (Date.now() < this.directUntil && this.pending.size === 0)) return undefined;
    const socket = this.socket ?? (await this.connect());
    if (socket === undefined || socket !== this.socket || !socket.writable) return undefined;
    const answer = new Promise<AppendCommitted | undefined>((resolve) => {
      this.pending.set(n, { n, rows: rows.length, deadline: Date.now() + this.timeoutMs, resolve });
    });
    if (this.pending.size === 1) socket.ref(); // an append in flight keeps the process alive, an idle connection does not
    this.timer ??= setTimeout(() => this.checkDeadlines(), this.timeoutMs).unref();
    socket.write(line);
    return answer;
  }

  /** A direct append met another writer: back to the daemon's shared commits from the next append on. */
  notAlone(): void {
    this.directUntil = -Infinity;
  }

  /** Closes the connection; appends in flight resolve undefined (their callers append directly). */
  close(): void {
    this.fail(this.socket);
    this.lastFailureAt = -Infinity;
  }

  private connect(): Promise<net.Socket | undefined> {
    if (this.connecting !== undefined) return this.connecting;
    if (Date.now() - this.lastFailureAt < RECONNECT_AFTER_MS) return Promise.resolve(undefined);
    if (!existsSync(this.socketPath)) {
      this.lastFailureAt = Date.now();
      return Promise.resolve(undefined);
    }
    this.connecting = new Promise<net.Socket | undefined>((resolve) => {
      const socket = net.createConnection(this.socketPath);
      const timer = setTimeout(() => {
        this.failed(socket);
        socket.destroy();
      }, this.timeoutMs);
      socket.setEncoding('utf8');
      socket.once('connect', () => {
        clearTimeout(timer);
        this.socket = socket;
        this.reader.reset();
        resolve(socket);
      });
      socket.on('data', (chunk: string) => this.receive(chunk));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(timer);
        this.failed(socket);
        resolve(undefined);
      });
      socket.unref(); // referenced only while an append is in flight
    }).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private receive(chunk: string): void {
    for (const line of this.reader.push(chunk)) {
      const answer = parseAnswer(line);
      if (answer === undefined) return this.fail(this.socket); // not the daemon we know: append directly
      const waiting = this.pending.get(answer.n);
      if (waiting === undefined) continue; // a request that timed out (its caller appended directly)
      if (!('error' in answer) && !coversRequest(answer, waiting.rows)) return this.fail(this.socket); // ids that do not match the rows
      this.pending.delete(answer.n);
      if (this.pending.size === 0) this.socket?.unref();
      if ('alone' in answer && answer.alone === true) this.directUntil = Date.now() + DIRECT_WHILE_ALONE_MS;
      waiting.resolve('error' in answer ? undefined : answer);
    }
    if (this.reader.pendingLength > MAX_REQUEST_LENGTH) this.fail(this.socket);
  }

  /** The oldest append in flight waited longer than timeoutMs: the connection is dropped (each caller appends directly). */
  private checkDeadlines(): void {
    this.timer = undefined;
    const oldest = this.pending.values().next();
    if (oldest.done) return;
    const left = oldest.value.deadline - Date.now();
    if (left <= 0) return this.fail(this.socket);
    this.timer = setTimeout(() => this.checkDeadlines(), left).unref();
  }

  /** Drops `socket` and answers every append in flight with undefined. */
  private fail(socket: net.Socket | undefined): void {
    this.failed(socket);
    socket?.destroy();
  }

  private failed(socket: net.Socket | undefined): void {
    if (socket !== undefined && this.socket !== undefined && socket !== this.socket) return; // an older connection's close
    this.socket = undefined;
    this.reader.reset();
    this.lastFailureAt = Date.now();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const w of waiting) w.resolve(undefined);
  }
}
