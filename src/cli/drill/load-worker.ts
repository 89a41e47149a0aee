/**
 * One drill worker, run as its own process (like a real worker next to its agent): appends rows at a fixed
 * rate through a real WriteBuffer while the same process runs the sync daemon, and reports every
 * acknowledged id to the drill over IPC. On 'stop' it stops appending, lets the daemon sync what is
 * pending, and exits.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../agent/config.js';
import { WriteBuffer } from '../../agent/write-buffer.js';
import type { LoadWorkerMessage, LoadWorkerSpec } from './load-worker-protocol.js';

const spec = JSON.parse(process.env.DRILL_WORKER_SPEC ?? 'null') as LoadWorkerSpec | null;
if (!spec || typeof process.send !== 'function') {
  console.error('load-worker: run by the drill only (needs DRILL_WORKER_SPEC and an IPC channel)');
  process.exit(2);
}

const send = (message: LoadWorkerMessage) => process.send!(message);
const buffer = WriteBuffer.open({ bufferPath: spec.bufferPath, config: loadConfig(spec.configPath) });
const daemon = buffer.startDaemon();
const intervalMs = 1000 / spec.ratePerSecond;
let seq = 0;
let pendingAcks: [string, number, number][] = [];
let appending = true;

function appendDue(startedAt: number): void {
  // Catch up to the schedule so a slow tick does not lower the rate.
  const due = Math.floor((Date.now() - startedAt) / intervalMs);
  while (appending && seq < due) {
    seq += 1;
    const id = `${spec!.workerId}-${seq}`;
    const t0 = performance.now();
    buffer.append(spec!.stream, { id, worker: spec!.workerId, seq, payload: { text: `message ${seq} from ${spec!.workerId}` } });
    pendingAcks.push([id, Date.now(), Math.round((performance.now() - t0) * 1000)]);
  }
}

const startedAt = Date.now();
const appendTimer = setInterval(() => appendDue(startedAt), Math.max(1, Math.min(10, intervalMs)));
const flushTimer = setInterval(() => {
  if (pendingAcks.length === 0) return;
  send({ type: 'acks', acks: pendingAcks });
  pendingAcks = [];
}, 50);
send({ type: 'ready', pid: process.pid });

process.on('message', (message: { type: string; syncTimeoutMs?: number }) => {
  if (message.type !== 'stop') return;
  void stop(message.syncTimeoutMs ?? 30_000);
});

async function stop(syncTimeoutMs: number): Promise<void> {
  appending = false;
  clearInterval(appendTimer);
  clearInterval(flushTimer);
  if (pendingAcks.length > 0) send({ type: 'acks', acks: pendingAcks });
  pendingAcks = [];
  const deadline = Date.now() + syncTimeoutMs;
  while (buffer.status().pendingRows > 0 && Date.now() < deadline) await sleep(20);
  await daemon.stop();
  const status = buffer.status();
  await buffer.close();
  send({ type: 'stopped', appended: seq, pendingRows: status.pendingRows, lastSyncError: status.lastSyncError });
  process.disconnect?.();
}
