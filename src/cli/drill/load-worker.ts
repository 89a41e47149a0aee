/**
 * One drill worker, run as its own process: appends rows at a fixed rate through a real WriteBuffer and
 * reports every acknowledged id to the drill over IPC. By default the same process runs the sync daemon;
 * with `syncInProcess: false` it only appends and the agent runs as its own process (see the spec). An append
 * the buffer refuses (full volume) is reported as refused, never as acknowledged. On 'stop' it stops
 * appending, waits until the daemon synced what is pending, and exits.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../agent/config.js';
import { BufferFullError } from '../../agent/outbox.js';
import { WriteBuffer } from '../../agent/write-buffer.js';
import type { LoadWorkerCommand, LoadWorkerMessage, LoadWorkerSpec } from './load-worker-protocol.js';

const spec = JSON.parse(process.env.DRILL_WORKER_SPEC ?? 'null') as LoadWorkerSpec | null;
if (!spec || typeof process.send !== 'function') {
  console.error('load-worker: run by the drill only (needs DRILL_WORKER_SPEC and an IPC channel)');
  process.exit(2);
}

const send = (message: LoadWorkerMessage) => process.send!(message);
const buffer = WriteBuffer.open({ bufferPath: spec.bufferPath, config: loadConfig(spec.configPath) });
const daemon = spec.syncInProcess === false ? null : buffer.startDaemon();
const intervalMs = 1000 / spec.ratePerSecond;
let seq = 0;
let pendingAcks: [string, number, number][] = [];
let pendingRefused: [string, number][] = [];
let refusal = '';
let appending = true;

function appendDue(startedAt: number): void {
  // Catch up to the schedule so a slow tick does not lower the rate.
  const due = Math.floor((Date.now() - startedAt) / intervalMs);
  while (appending && seq < due) {
    seq += 1;
    const id = `${spec!.workerId}-${seq}`;
    const t0 = performance.now();
    try {
      buffer.append(spec!.stream, { id, worker: spec!.workerId, seq, payload: { text: `message ${seq} from ${spec!.workerId}` } });
    } catch (error) {
      if (!(error instanceof BufferFullError)) throw error;
      // Refused, nothing stored: the caller was told, so this id is not acknowledged (an app would retry or fail the request).
      pendingRefused.push([id, Date.now()]);
      refusal ||= error.message;
      continue;
    }
    pendingAcks.push([id, Date.now(), Math.round((performance.now() - t0) * 1000)]);
  }
}

function flush(): void {
  if (pendingAcks.length > 0) send({ type: 'acks', acks: pendingAcks });
  if (pendingRefused.length > 0) send({ type: 'refused', refused: pendingRefused, error: refusal });
  pendingAcks = [];
  pendingRefused = [];
  refusal = '';
}

const startedAt = Date.now();
const appendTimer = setInterval(() => appendDue(startedAt), Math.max(1, Math.min(10, intervalMs)));
const flushTimer = setInterval(flush, 50);
send({ type: 'ready', pid: process.pid });

// The drill went away without stopping us (killed): appending on would only fill a buffer nobody reads.
process.on('disconnect', () => {
  if (appending) process.exit(1);
});

process.on('message', (message: LoadWorkerCommand) => {
  if (message.type === 'stop') void stop(message.syncTimeoutMs);
  if (message.type === 'disk') buffer.outbox.setMaxBytes(message.space === 'full' ? buffer.outbox.databaseBytes() : null);
});

async function stop(syncTimeoutMs: number): Promise<void> {
  appending = false;
  clearInterval(appendTimer);
  clearInterval(flushTimer);
  flush();
  const deadline = Date.now() + syncTimeoutMs;
  while (buffer.status().pendingRows > 0 && Date.now() < deadline) await sleep(20);
  await daemon?.stop();
  const status = buffer.status();
  await buffer.close();
  send({ type: 'stopped', appended: seq, pendingRows: status.pendingRows, lastSyncError: status.lastSyncError });
  process.disconnect?.();
}
