import { existsSync, writeSync } from 'node:fs';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { isServedByThisProcess } from './append-server.js';
import { coversRequest, DIRECT_WHILE_ALONE_MS, MAX_REQUEST_LENGTH, parseAnswer, type AppendCommitted } from './append-protocol.js';

/** After the daemon was found down, how long appends go directly before the socket is tried again. */
export const RECONNECT_AFTER_MS = 1000;

/** Requests up to this many characters are written by the caller's thread itself; longer ones by the worker. */
export const DIRECT_WRITE_MAX = 16 * 1024;

/** Answers up to this many bytes come back through shared memory; longer ones as a message. */
export const ANSWER_SLOT_BYTES = 64 * 1024;

/**
 * The shared words between the caller's thread and the worker (an Int32Array over a SharedArrayBuffer).
 * WAKE: bumped (and notified) whenever the worker has something for the caller. SLOT: the byte length of the
 * answer waiting in the shared answer slot, 0 when empty (the worker fills it only when empty, the caller
 * empties it). POSTED: messages the worker posted on the port. FD_STATE / FD: the connection's descriptor and
 * who may use it (below).
 */
export const Word = { WAKE: 0, SLOT: 1, POSTED: 2, FD_STATE: 3, FD: 4 } as const;

/**
 * FD_STATE: NONE no connection; OPEN the caller may write on FD; WRITING the caller is writing on it (the
 * worker must not close it now); CLOSED the worker closed it or is closing it (the caller must not touch FD:
 * its number may already name another file). Only the caller moves OPEN -> WRITING -> OPEN; only the worker
 * moves OPEN -> CLOSED, waiting while the caller writes.
 */
export const FdState = { NONE: 0, OPEN: 1, WRITING: 2, CLOSED: 3 } as const;

/**
 * The socket side of a synchronous append (WriteBuffer.append returns once the row is durable, as a direct
 * SQLite commit does). Node has no blocking socket call, so a small worker thread owns the connection and reads
 * the daemon's answers (net's `onread`: into one reused buffer, past the stream machinery); the caller's thread
 * writes its request straight onto the connection's descriptor (fs.writeSync) and blocks in Atomics.wait until
 * the worker has copied the answer into shared memory and woken it. Per append: one write by the caller, one wake-up and one read in the worker, no message between
 * the threads (the first version posted each request and answer as a message: two more wake-ups and two
 * structured clones per append, which cost the appender more CPU than the rest; docs/buffer.md).
 * Plain JavaScript evaluated in the worker: no module to locate under tsx, vitest or the esbuild bundle.
 */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const net = require('node:net');
const { port, socketPath } = workerData;
const words = new Int32Array(workerData.words);
const slot = new Uint8Array(workerData.slot);
const [WAKE, SLOT, POSTED, FD_STATE, FD] = [${Word.WAKE}, ${Word.SLOT}, ${Word.POSTED}, ${Word.FD_STATE}, ${Word.FD}];
const [NONE, OPEN, WRITING, CLOSED] = [${FdState.NONE}, ${FdState.OPEN}, ${FdState.WRITING}, ${FdState.CLOSED}];
let socket = null;
// A connection not up yet: the caller may give up on it first (reset), and then it must not stay open.
let connecting = null;
let partial = [];
function wake() {
  Atomics.add(words, WAKE, 1);
  Atomics.notify(words, WAKE);
}
function tell(message) {
  port.postMessage(message);
  Atomics.add(words, POSTED, 1);
  wake();
}
// Before the descriptor can be closed: the caller must not be writing on it, and must not start to.
function closing() {
  for (;;) {
    const was = Atomics.compareExchange(words, FD_STATE, OPEN, CLOSED);
    if (was !== WRITING) return;
    Atomics.wait(words, FD_STATE, WRITING, 1);
  }
}
process.on('uncaughtException', (error) => {
  closing();
  throw error;
});
function answer(line) {
  if (line.length > 0 && line.length <= slot.length && Atomics.load(words, SLOT) === 0) {
    slot.set(line);
    Atomics.store(words, SLOT, line.length);
  } else {
    port.postMessage({ type: 'answer', line: line.toString('utf8') });
    Atomics.add(words, POSTED, 1);
  }
}
// Reads land in one reused buffer and go to onRead, past the stream machinery (net's onread option).
const readBuffer = Buffer.allocUnsafe(64 * 1024);
function onRead(length, buffer) {
  const data = buffer.subarray(0, length);
  let start = 0;
  for (let end = data.indexOf(10); end >= 0; end = data.indexOf(10, start)) {
    let line = data.subarray(start, end);
    if (partial.length > 0) {
      partial.push(line);
      line = Buffer.concat(partial);
      partial = [];
    }
    answer(line);
    start = end + 1;
  }
  if (start < length) partial.push(Buffer.from(data.subarray(start))); // a copy: the buffer is reused
  wake();
}
function reset() {
  const c = connecting;
  connecting = null;
  c?.destroy();
  socket?.destroy();
}
function connect() {
  reset();
  const s = net.createConnection({ path: socketPath, onread: { buffer: readBuffer, callback: onRead } });
  connecting = s;
  const destroy = s.destroy;
  // every way the socket closes its descriptor goes through destroy()
  s.destroy = function (...args) {
    if (socket === s) closing();
    return destroy.apply(this, args);
  };
  s.on('connect', () => {
    if (connecting !== s) return; // given up meanwhile: destroyed already
    connecting = null;
    socket = s;
    Atomics.store(words, FD, s._handle.fd);
    Atomics.store(words, FD_STATE, OPEN);
    tell({ type: 'connected' });
  });
  s.on('error', () => undefined);
  s.on('close', () => {
    if (socket === s) {
      closing();
      socket = null;
      partial = [];
      tell({ type: 'down' });
    } else if (connecting === s) {
      connecting = null;
      tell({ type: 'down' }); // refused: the caller need not wait for its deadline
    }
  });
}
port.on('message', (message) => {
  if (message.type === 'connect') connect();
  else if (message.type === 'reset') reset();
  else if (socket !== null && socket.writable) socket.write(message.data);
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
  private readonly words = new Int32Array(new SharedArrayBuffer(5 * 4));
  private readonly slot = new SharedArrayBuffer(ANSWER_SLOT_BYTES);
  private received = 0;
  private connected = false;
  private lastAttemptAt = -Infinity;
  private requestNumber = 0;
  /** The daemon said this process appends alone: directly until then (see ALONE_WINDOW_MS). */
  private directUntil = -Infinity;

  constructor(
    readonly socketPath: string,
    private readonly timeoutMs: number,
  ) {}

  append(stream: string, rows: readonly string[]): AppendCommitted | undefined {
    const line = `${JSON.stringify({ n: ++this.requestNumber, stream, rows })}\n`;
    // The daemon's own thread would wait for itself: in the daemon's process, appends go directly.
    if (line.length > MAX_REQUEST_LENGTH || isServedByThisProcess(this.socketPath) || Date.now() < this.directUntil || !this.connect()) return undefined;
    const n = this.requestNumber;
    const deadline = Date.now() + this.timeoutMs;
    if (!this.send(line)) return this.lost(true);
    for (;;) {
      const message = this.receive(deadline);
      if (message === undefined || message.type !== 'answer') return this.lost(message === undefined);
      const answer = parseAnswer(message.line);
      if (answer === undefined) return this.lost(true); // not the daemon we know: append directly
      if (answer.n !== n) continue; // a late answer to a request that timed out
      if ('error' in answer) return undefined;
      if (!coversRequest(answer, rows.length)) return this.lost(true); // ids that do not match the rows: not the daemon's
      if (answer.alone === true) this.directUntil = Date.now() + DIRECT_WHILE_ALONE_MS;
      return answer;
    }
  }

  /** True while the daemon's "alone" holds: appends go directly without asking it. */
  get appendsDirectly(): boolean {
    return Date.now() < this.directUntil;
  }

  /** A direct append met another writer: back to the daemon's shared commits from the next append on. */
  notAlone(): void {
    this.directUntil = -Infinity;
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.port?.close();
    this.connected = false;
    Atomics.store(this.words, Word.FD_STATE, FdState.CLOSED); // the descriptor is the worker's to close
    await worker?.terminate();
  }

  /**
   * Writes the request: a short one straight onto the descriptor, unless the worker is closing it; a long one,
   * or the rest of one the socket could not take at once, through the worker (its event loop waits for room).
   * False when the connection broke.
   */
  private send(line: string): boolean {
    let bytes: Buffer | undefined = line.length <= DIRECT_WRITE_MAX ? Buffer.from(line, 'utf8') : undefined;
    if (bytes !== undefined && Atomics.compareExchange(this.words, Word.FD_STATE, FdState.OPEN, FdState.WRITING) === FdState.OPEN) {
      try {
        const written = writeSync(Atomics.load(this.words, Word.FD), bytes);
        bytes = written === bytes.length ? undefined : bytes.subarray(written);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return false; // EPIPE, ECONNRESET: the daemon went away
      } finally {
        Atomics.store(this.words, Word.FD_STATE, FdState.OPEN);
        Atomics.notify(this.words, Word.FD_STATE);
      }
      if (bytes === undefined) return true;
    }
    this.port!.postMessage({ type: 'send', data: bytes ?? line });
    return true;
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
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { port: port2, socketPath: this.socketPath, words: this.words.buffer, slot: this.slot },
      transferList: [port2],
    });
    this.worker.unref(); // never what keeps the process alive
    this.port = port1;
  }

  /** The daemon went away or did not answer in time: direct appends until the next attempt. */
  private lost(reset: boolean): undefined {
    this.connected = false;
    this.lastAttemptAt = Date.now();
    if (reset) this.port!.postMessage({ type: 'reset' });
    return undefined;
  }

  /** The worker's next answer or message, blocking this thread until it comes or `deadline` passes. */
  private receive(deadline: number): WorkerMessage | undefined {
    for (;;) {
      const seen = Atomics.load(this.words, Word.WAKE);
      const length = Atomics.load(this.words, Word.SLOT);
      if (length > 0) {
        const line = Buffer.from(this.slot, 0, length).toString('utf8');
        Atomics.store(this.words, Word.SLOT, 0);
        return { type: 'answer', line };
      }
      if (Atomics.load(this.words, Word.POSTED) !== this.received) {
        const got = receiveMessageOnPort(this.port!);
        if (got !== undefined) {
          this.received += 1;
          return got.message as WorkerMessage;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      Atomics.wait(this.words, Word.WAKE, seen, left);
    }
  }

  /** Drops what an earlier connection left (its close, late answers). */
  private drain(): void {
    while (receiveMessageOnPort(this.port!) !== undefined) this.received += 1;
    Atomics.store(this.words, Word.SLOT, 0);
  }
}
