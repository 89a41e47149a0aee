import { existsSync } from 'node:fs';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { isServedByThisProcess } from './append-server.js';
import { MAX_REQUEST_LENGTH, type AppendAnswer, type AppendCommitted } from './append-protocol.js';

/** After the daemon was found down, how long appends go directly before the socket is tried again. */
export const RECONNECT_AFTER_MS = 1000;

/**
 * The socket side of a synchronous append (WriteBuffer.append returns once the row is durable, as a direct
 * SQLite commit does). Node has no blocking socket call, so a small worker thread owns the connection and the
 * caller's thread blocks in Atomics.wait until the worker has the daemon's answer: the same blocking a
 * direct commit's fsync costs, with the fsync shared with the other callers.
 * Plain JavaScript evaluated in the worker: no module to locate under tsx, vitest or the esbuild bundle.
 */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const net = require('node:net');
const { port, socketPath } = workerData;
const signal = new Int32Array(workerData.signal);
let socket = null;
let partial = '';
function tell(message) {
  port.postMessage(message);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}
function connect() {
  const s = net.createConnection(socketPath);
  s.setEncoding('utf8');
  s.on('connect', () => { socket = s; tell({ type: 'connected' }); });
  s.on('data', (chunk) => {
    partial += chunk;
    let start = 0;
    for (let end = partial.indexOf('\\n'); end >= 0; end = partial.indexOf('\\n', start)) {
      tell({ type: 'answer', line: partial.slice(start, end) });
      start = end + 1;
    }
    partial = partial.slice(start);
  });
  s.on('error', () => undefined);
  s.on('close', () => {
    if (socket === s) socket = null;
    partial = '';
    tell({ type: 'down' });
  });
}
port.on('message', (message) => {
  if (message.type === 'connect') connect();
  else if (message.type === 'reset') socket?.destroy();
  else if (socket !== null && socket.writable) socket.write(message.line);
  else tell({ type: 'down' });
});
`;

type WorkerMessage = { type: 'connected' } | { type: 'down' } | { type: 'answer'; line: string };

/**
 * A connection to the daemon's append socket. `append` answers with the daemon's answer, or undefined when
 * the daemon cannot answer now (no socket, refused, closed, no answer within `timeoutMs`, or it could not
 * commit): the caller then appends directly into the file. That is safe even if the daemon committed the
 * rows without answering: a re-append of the same row is acknowledged again, not stored twice.
 */
export class AppendClient {
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private readonly signal = new Int32Array(new SharedArrayBuffer(4));
  private connected = false;
  private lastAttemptAt = -Infinity;
  private requestNumber = 0;

  constructor(
    readonly socketPath: string,
    private readonly timeoutMs: number,
  ) {}

  append(stream: string, rows: readonly string[]): AppendCommitted | undefined {
    const line = `${JSON.stringify({ n: ++this.requestNumber, stream, rows })}\n`;
    // The daemon's own thread would wait for itself: in the daemon's process, appends go directly.
    if (line.length > MAX_REQUEST_LENGTH || isServedByThisProcess(this.socketPath) || !this.connect()) return undefined;
    const n = this.requestNumber;
    const deadline = Date.now() + this.timeoutMs;
    this.port!.postMessage({ type: 'send', line });
    for (;;) {
      const message = this.receive(deadline);
      if (message === undefined || message.type !== 'answer') return this.lost(message === undefined);
      const answer = JSON.parse(message.line) as AppendAnswer;
      if (answer.n !== n) continue; // a late answer to a request that timed out
      return 'error' in answer ? undefined : answer;
    }
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.port?.close();
    this.connected = false;
    await worker?.terminate();
  }

  /** True when connected, connecting first if the last attempt is long enough ago and the socket exists. */
  private connect(): boolean {
    if (this.connected) return true;
    if (Date.now() - this.lastAttemptAt < RECONNECT_AFTER_MS) return false;
    this.lastAttemptAt = Date.now();
    if (!existsSync(this.socketPath)) return false;
    this.startWorker();
    this.drain();
    this.port!.postMessage({ type: 'connect' });
    this.connected = this.receive(Date.now() + this.timeoutMs)?.type === 'connected';
    if (!this.connected) this.port!.postMessage({ type: 'reset' });
    return this.connected;
  }

  private startWorker(): void {
    if (this.worker !== undefined) return;
    const { port1, port2 } = new MessageChannel();
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { port: port2, socketPath: this.socketPath, signal: this.signal.buffer }, transferList: [port2] });
    this.worker.unref(); // never what keeps the process alive
    this.port = port1;
  }

  /** The daemon went away or did not answer in time: direct appends until the next attempt. */
  private lost(timedOut: boolean): undefined {
    this.connected = false;
    this.lastAttemptAt = Date.now();
    if (timedOut) this.port!.postMessage({ type: 'reset' });
    return undefined;
  }

  /** The worker's next message, blocking this thread until it comes or `deadline` passes. */
  private receive(deadline: number): WorkerMessage | undefined {
    for (;;) {
      const seen = Atomics.load(this.signal, 0);
      const got = receiveMessageOnPort(this.port!);
      if (got !== undefined) return got.message as WorkerMessage;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      Atomics.wait(this.signal, 0, seen, left);
    }
  }

  /** Drops what an earlier connection left (its close, late answers). */
  private drain(): void {
    while (receiveMessageOnPort(this.port!) !== undefined);
  }
}
