import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/agent/config.js';
import { Outbox } from '../../../src/agent/outbox.js';
import { WriteBuffer } from '../../../src/agent/write-buffer.js';
import { compareLsn, parseLsn } from '../../../src/core/lsn.js';
import { LocalCluster } from '../../../src/local/local-cluster.js';
import { LocalWorkerControl } from '../../../src/local/local-worker-control.js';
import { STANDBY_TIMELINE_SQL } from '../../../src/pg/replication-queries.js';
import type { DrainStatus, ForkPoint } from '../../../src/ports/index.js';
import { EVENTS_DDL, EVENTS_STREAM, idsIn, ndjson, runAgent, sleep, sql, writeConfig } from './agent-fixture.js';

/**
 * The failover the buffer exists for: rows the old primary acknowledged but never shipped to the replica
 * that gets promoted. pg-1 is stopped while pg-0 keeps committing synced batches (a replica that is behind
 * when the primary dies); pg-0 is then killed and pg-1 promoted. Pausing replay alone would not lose
 * anything: at promotion PostgreSQL replays all WAL the standby already received.
 */
let cluster: LocalCluster;
let dir: string;
let buffer: string;
let config: string;
let forkPoint: ForkPoint;
const DB = 'app';

const rows = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${i}`, body: prefix, n: i }));
const ids = (prefix: string, count: number) => rows(prefix, count).map((r) => r.id);

async function waitForDrain(control: LocalWorkerControl, worker: string, handle: string): Promise<DrainStatus> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await control.drainStatus(worker, handle);
    if (status.state !== 'pending') return status;
    if (Date.now() > deadline) throw new Error('drain did not finish within 60 s');
    await sleep(50);
  }
}

beforeAll(async () => {
  cluster = await LocalCluster.start({ replicas: 2, settings: { wal_receiver_status_interval: '1s' } });
  dir = mkdtempSync(path.join(os.tmpdir(), 'agent-failover-'));
  await cluster.createDatabase(DB);
  await sql(cluster, 'pg-0', EVENTS_DDL, DB);
  buffer = path.join(dir, 'worker-1.db');
  // The worker follows the cluster's writer file (the local Route 53 record), database 'app'.
  const writerFile = path.join(dir, 'writer.url');
  writeFileSync(writerFile, `${cluster.connectionString('pg-0', DB)}\n`);
  config = writeConfig(path.join(dir, 'worker-1.json'), { writerFile, batchSize: 100, streams: { events: EVENTS_STREAM }, retention: { seconds: 1, minReplicas: 1 }, drain: { defaultWindowSeconds: 1 } });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const agent = (command: string, ...extra: string[]) => runAgent([command, '--json', '--buffer', buffer, '--config', config, ...extra]);
const append = async (prefix: string, count: number) => {
  const run = await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(rows(prefix, count)));
  expect(run.code).toBe(0);
  expect(run.stdout.trim().split('\n')).toEqual(ids(prefix, count));
};
const pointWriterAt = (node: string) => writeFileSync(path.join(dir, 'writer.url'), `${cluster.connectionString(node, DB)}\n`);

describe('failover with a replica that is behind', () => {
  it('rows acknowledged by the old primary after the fork point are missing on the new primary without a drain', async () => {
    await append('replicated', 300);
    expect(JSON.parse((await agent('sync-once')).stdout)).toMatchObject({ sent: 300, inserted: 300 });
    const [{ lsn }] = await sql<{ lsn: string }>(cluster, 'pg-0', 'SELECT pg_current_wal_lsn()::text AS lsn');
    await cluster.waitForReplay('pg-1', lsn!);

    await cluster.stopNode('pg-1', 'fast');
    await append('lost', 200);
    expect(JSON.parse((await agent('sync-once')).stdout)).toMatchObject({ sent: 200, inserted: 200 });
    await append('pending', 50); // acknowledged, never synced before the crash
    await cluster.stopNode('pg-0', 'kill');

    // The controller's fork point: the candidate's timeline and replay LSN before promotion.
    await cluster.startNode('pg-1');
    const [fork] = await sql<{ timeline: number; lsn: string }>(cluster, 'pg-1', `SELECT ${STANDBY_TIMELINE_SQL} AS timeline, pg_last_wal_replay_lsn()::text AS lsn`);
    forkPoint = { timelineId: fork!.timeline, lsn: fork!.lsn };
    expect(forkPoint.timelineId).toBe(1);
    await cluster.promote('pg-1');
    pointWriterAt('pg-1');

    // The normal sync loop follows the writer and delivers the pending rows, but knows nothing of the loss.
    expect(JSON.parse((await agent('sync-once')).stdout)).toMatchObject({ sent: 50, inserted: 50, pendingRows: 0 });
    const onNewPrimary = await idsIn(cluster, 'pg-1', DB);
    expect(onNewPrimary.rows).toBe(350);
    for (const id of ids('replicated', 300)) expect(onNewPrimary.ids.has(id)).toBe(true);
    for (const id of ids('pending', 50)) expect(onNewPrimary.ids.has(id)).toBe(true);
    const missing = ids('lost', 200).filter((id) => !onNewPrimary.ids.has(id));
    expect(missing).toHaveLength(200);

    // The buffer still knows where those rows were committed: timeline 1, above the fork point.
    const outbox = Outbox.open(buffer);
    const lost = outbox.rows().filter((r) => r.id.startsWith('lost-'));
    const replicated = outbox.rows().filter((r) => r.id.startsWith('replicated-'));
    const delivered = outbox.rows().filter((r) => r.id.startsWith('pending-'));
    outbox.close();
    expect(lost.every((r) => r.markerTimeline === 1 && compareLsn(r.markerLsn!, forkPoint.lsn) > 0)).toBe(true);
    expect(replicated.every((r) => r.markerTimeline === 1 && compareLsn(r.markerLsn!, forkPoint.lsn) <= 0)).toBe(true);
    expect(delivered.every((r) => r.markerTimeline === 2)).toBe(true);
  });

  it('drain with the fork point (run through the agent CLI by LocalWorkerControl) puts every acknowledged row into the new primary once', async () => {
    const control = new LocalWorkerControl([{ id: 'worker-1', bufferPath: buffer, configPath: config }]);
    expect(await control.listWorkers()).toEqual([{ id: 'worker-1' }]);
    const handle = await control.startDrain('worker-1', { forkPoint });
    expect(await control.drainStatus('worker-1', handle)).toEqual({ state: 'pending' });
    const status = await waitForDrain(control, 'worker-1', handle);
    // re-sent: the 200 rows above the fork on timeline 1, and the 50 synced on timeline 2 (not the fork's
    // timeline: re-sent on principle, found present); the 300 below the fork are left alone.
    expect(status).toEqual({ state: 'done', summary: { examined: 550, resent: 250, inserted: 200, alreadyPresent: 50, remainingPending: 0, rejected: 0 } });

    const onNewPrimary = await idsIn(cluster, 'pg-1', DB);
    expect(onNewPrimary.rows).toBe(550);
    expect(onNewPrimary.ids).toEqual(new Set([...ids('replicated', 300), ...ids('lost', 200), ...ids('pending', 50)]));

    const outbox = Outbox.open(buffer);
    const all = outbox.rows();
    expect(outbox.recordedForks()).toEqual([{ timelineId: 1, forkLsn: parseLsn(forkPoint.lsn), nextTimelineId: 2 }]);
    outbox.close();
    expect(all.filter((r) => r.id.startsWith('lost-')).every((r) => r.markerTimeline === 2)).toBe(true);

    // Safe to run again: everything is present, nothing is inserted twice.
    const again = await waitForDrain(control, 'worker-1', await control.startDrain('worker-1', { forkPoint }));
    expect(again).toEqual({ state: 'done', summary: { examined: 550, resent: 250, inserted: 0, alreadyPresent: 250, remainingPending: 0, rejected: 0 } });
    expect((await idsIn(cluster, 'pg-1', DB)).rows).toBe(550);
  });

  it('reports a failed drain with the agent error', async () => {
    const control = new LocalWorkerControl([{ id: 'worker-1', bufferPath: path.join(dir, 'absent.db'), configPath: config }]);
    const status = await waitForDrain(control, 'worker-1', await control.startDrain('worker-1', { windowSeconds: 60 }));
    expect(status).toEqual({ state: 'failed', error: `buffer file ${path.join(dir, 'absent.db')} does not exist (exit code 1)` });
    await expect(control.startDrain('worker-9', { windowSeconds: 60 })).rejects.toThrow("unknown worker 'worker-9': known workers are worker-1");
    await expect(control.drainStatus('worker-1', 'drain-99-worker-1')).rejects.toThrow("no drain 'drain-99-worker-1' was started on worker 'worker-1'");
  });

  it('a drain running beside the daemon and live appends loses and duplicates nothing', async () => {
    const bufferLib = WriteBuffer.open({ bufferPath: buffer, config: { ...loadConfig(config), pollIntervalMs: 10 } });
    const daemon = bufferLib.startDaemon();
    const acknowledged: string[] = [];
    let appending = true;
    const appender = (async () => {
      for (let i = 0; appending; i++) {
        acknowledged.push(bufferLib.append('events', { id: `live-${i}`, body: 'live', n: i }));
        await sleep(1);
      }
    })();
    const drains = await Promise.all([agent('drain', '--fork-timeline', '1', '--fork-lsn', forkPoint.lsn), agent('drain', '--window', '1h')]);
    appending = false;
    await appender;
    for (const run of drains) expect(run.code).toBe(0);
    const deadline = Date.now() + 20_000;
    while (bufferLib.status().pendingRows > 0 && Date.now() < deadline) await sleep(50);
    await daemon.stop();
    await bufferLib.close();
    expect(acknowledged.length).toBeGreaterThan(50);
    const onNewPrimary = await idsIn(cluster, 'pg-1', DB);
    expect(onNewPrimary.rows).toBe(550 + acknowledged.length);
    for (const id of acknowledged) expect(onNewPrimary.ids.has(id)).toBe(true);
  });

  it('after the failover, prune uses the recorded fork: timeline-1 rows below the fork are prunable once replicas replayed', async () => {
    await cluster.rebuild('pg-0', 'pg-1');
    await cluster.repoint('pg-2', 'pg-1');
    const [{ lsn }] = await sql<{ lsn: string }>(cluster, 'pg-1', 'SELECT pg_current_wal_lsn()::text AS lsn');
    const deadline = Date.now() + 20_000;
    for (;;) {
      const peers = await sql<{ replay: string | null }>(cluster, 'pg-1', 'SELECT replay_lsn::text AS replay FROM pg_stat_replication');
      if (peers.length === 2 && peers.every((p) => p.replay !== null && compareLsn(p.replay, lsn!) >= 0)) break;
      if (Date.now() > deadline) throw new Error('replicas of pg-1 did not report replay');
      await sleep(100);
    }
    await sleep(1100); // every row is past the 1 s retention
    const result = JSON.parse((await agent('prune')).stdout);
    expect(result).toMatchObject({ writerTimeline: 2, replicas: 2, skippedBecause: null });
    const outbox = Outbox.open(buffer);
    const left = outbox.rows();
    outbox.close();
    // every row is either on timeline 2 below the replicas' replay LSN, or on timeline 1 below the fork: all gone
    expect(left).toEqual([]);
    expect(result.pruned).toBeGreaterThanOrEqual(550);
  });
});
