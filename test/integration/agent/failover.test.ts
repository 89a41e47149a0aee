import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/agent/config.js';
import { Outbox } from '../../../src/agent/outbox.js';
import { WriteBuffer } from '../../../src/agent/write-buffer.js';
import { headOf, type Epoch } from '../../../src/core/lineage.js';
import { compareLsn } from '../../../src/core/lsn.js';
import { PgLineageStore } from '../../../src/pg/lineage.js';
import { LocalCluster } from '../../../src/local/local-cluster.js';
import { LocalWorkerControl } from '../../../src/local/local-worker-control.js';
import { STANDBY_TIMELINE_SQL } from '../../../src/pg/replication-queries.js';
import type { DrainStatus, ForkPoint } from '../../../src/ports/index.js';
import { EVENTS_DDL, EVENTS_STREAM, idsIn, ndjson, runAgent, sleep, sql, waitForReportedReplay, writeConfig } from './agent-fixture.js';

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
let root: Epoch;
let epoch: Epoch;
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
  // The workers follow the cluster's writer file (the local Route 53 record), database 'app'.
  const writerFile = path.join(dir, 'writer.url');
  writeFileSync(writerFile, `${cluster.connectionString('pg-0', DB)}\n`);
  for (const id of ['worker-1', 'worker-2']) {
    const w = { buffer: path.join(dir, `${id}.db`), config: path.join(dir, `${id}.json`) };
    writeConfig(w.config, { writerFile, workerId: id, batchSize: 100, streams: { events: EVENTS_STREAM }, retention: { seconds: 1, minReplicas: 1 } });
    workers[id] = w;
  }
  buffer = workers['worker-1']!.buffer;
  config = workers['worker-1']!.config;
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const workers: Record<string, { buffer: string; config: string }> = {};
const agentOf = (id: string, command: string, ...extra: string[]) => runAgent([command, '--json', '--buffer', workers[id]!.buffer, '--config', workers[id]!.config, ...extra]);
const agent = (command: string, ...extra: string[]) => agentOf('worker-1', command, ...extra);
const appendTo = async (id: string, prefix: string, count: number) => {
  const run = await runAgent(['append', '--stream', 'events', '--buffer', workers[id]!.buffer, '--config', workers[id]!.config], ndjson(rows(prefix, count)));
  expect(run.code).toBe(0);
  expect(run.stdout.trim().split('\n')).toEqual(ids(prefix, count));
};
const pointWriterAt = (node: string) => writeFileSync(path.join(dir, 'writer.url'), `${cluster.connectionString(node, DB)}\n`);
const lineage = () => new PgLineageStore((id) => cluster.clientConfig(id, DB));

describe('failover with a replica that is behind', () => {
  it('rows the old primary acknowledged after the fork point are missing on a node promoted by hand, and the workers refuse it: it has no epoch', async () => {
    for (const w of ['worker-1', 'worker-2']) {
      await appendTo(w, `${w}-replicated`, 300);
      expect(JSON.parse((await agentOf(w, 'sync-once')).stdout)).toMatchObject({ sent: 300, inserted: 300 });
    }
    const [{ lsn }] = await sql<{ lsn: string }>(cluster, 'pg-0', 'SELECT pg_current_wal_lsn()::text AS lsn');
    await cluster.waitForReplay('pg-1', lsn!);

    await cluster.stopNode('pg-1', 'fast');
    for (const w of ['worker-1', 'worker-2']) {
      await appendTo(w, `${w}-lost`, 200);
      expect(JSON.parse((await agentOf(w, 'sync-once')).stdout)).toMatchObject({ sent: 200, inserted: 200 });
      await appendTo(w, `${w}-pending`, 50); // acknowledged, never synced before the crash
    }
    await cluster.stopNode('pg-0', 'kill');

    // What the runbook records before promoting: the candidate's timeline, replay LSN and epoch.
    await cluster.startNode('pg-1');
    const [fork] = await sql<{ timeline: number; lsn: string }>(cluster, 'pg-1', `SELECT ${STANDBY_TIMELINE_SQL} AS timeline, pg_last_wal_replay_lsn()::text AS lsn`, DB);
    forkPoint = { timelineId: fork!.timeline, lsn: fork!.lsn };
    root = headOf((await lineage().read('pg-1'))!, 'pg-1');
    expect(forkPoint.timelineId).toBe(1);
    await cluster.promote('pg-1');
    pointWriterAt('pg-1');

    const onNewPrimary = await idsIn(cluster, 'pg-1', DB);
    expect(ids('worker-1-lost', 200).filter((id) => !onNewPrimary.ids.has(id))).toHaveLength(200);
    // The buffer still knows where those rows were committed: the root epoch, above the fork point.
    const outbox = Outbox.open(buffer);
    const lost = outbox.rows().filter((r) => r.id.startsWith('worker-1-lost-'));
    const replicated = outbox.rows().filter((r) => r.id.startsWith('worker-1-replicated-'));
    outbox.close();
    expect(lost.every((r) => r.markerEpoch === root.id && compareLsn(r.markerLsn!, forkPoint.lsn) > 0)).toBe(true);
    expect(replicated.every((r) => r.markerEpoch === root.id && compareLsn(r.markerLsn!, forkPoint.lsn) <= 0)).toBe(true);

    // pg-1 writes on timeline 2 while its newest epoch says timeline 1: nothing goes to it, nothing is lost meanwhile.
    const refused = await agent('sync-once');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('writes on timeline 2, but its newest epoch');
    expect(refused.stderr).toContain('it was promoted outside the runbook');
    expect([...(await idsIn(cluster, 'pg-1', DB)).ids].some((id) => id.includes('-pending-'))).toBe(false);
  });

  it('once the epoch is recorded, a drain (the agent CLI run by LocalWorkerControl) puts every acknowledged row into the new primary once', async () => {
    epoch = await lineage().record('pg-1', { id: randomUUID(), parentId: root.id, generation: 2, forkLsn: forkPoint.lsn, timelineId: 2, nodeId: 'pg-1', executionId: 'test' });
    const control = new LocalWorkerControl([{ id: 'worker-1', bufferPath: buffer, configPath: config }]);
    expect(await control.listWorkers()).toEqual([{ id: 'worker-1' }]);
    const handle = await control.startDrain('worker-1', { epochId: epoch.id });
    expect(await control.drainStatus('worker-1', handle)).toEqual({ state: 'pending' });
    const status = await waitForDrain(control, 'worker-1', handle);
    // re-sent: the 200 rows above the fork and the 50 pending; the 300 below the fork are left alone.
    expect(status).toEqual({ state: 'done', summary: { epochId: epoch.id, examined: 550, resent: 250, inserted: 250, alreadyPresent: 0, remainingPending: 0, rejected: 0 } });

    const onNewPrimary = await idsIn(cluster, 'pg-1', DB);
    // worker-1's 550 rows, and the 300 of worker-2 that pg-1 had replicated (worker-2 is not drained)
    expect(onNewPrimary.rows).toBe(850);
    expect(onNewPrimary.ids).toEqual(new Set([...ids('worker-1-replicated', 300), ...ids('worker-1-lost', 200), ...ids('worker-1-pending', 50), ...ids('worker-2-replicated', 300)]));
    const outbox = Outbox.open(buffer);
    expect(outbox.rows().filter((r) => r.id.startsWith('worker-1-lost-')).every((r) => r.markerEpoch === epoch.id && r.markerTimeline === 2)).toBe(true);
    outbox.close();
    const confirmations = await lineage().confirmations('pg-1');
    expect(confirmations.find((c) => c.workerId === 'worker-1')).toEqual({ workerId: 'worker-1', epochId: epoch.id, rowsResent: 200, confirmedAt: expect.any(String) });
    // worker-2 confirmed the root epoch on its first sync, and nothing since: no drain reached it
    expect(confirmations.find((c) => c.workerId === 'worker-2')).toMatchObject({ epochId: root.id });

    // Safe to run again: every row is in the new history now, nothing is sent twice.
    const again = await waitForDrain(control, 'worker-1', await control.startDrain('worker-1', { epochId: epoch.id }));
    expect(again).toEqual({ state: 'done', summary: { epochId: epoch.id, examined: 550, resent: 0, inserted: 0, alreadyPresent: 0, remainingPending: 0, rejected: 0 } });
    expect((await idsIn(cluster, 'pg-1', DB)).rows).toBe(850);
  });

  it('a worker no drain reached heals by itself: its next sync pass re-sends what it synced outside the new history, then confirms', async () => {
    const pass = JSON.parse((await agentOf('worker-2', 'sync-once')).stdout);
    expect(pass).toMatchObject({ sent: 250, inserted: 250, resentSynced: 200, outsideHistory: 0, pendingRows: 0, resend: { complete: true, epoch: { id: epoch.id }, resentSynced: 200 } });
    const onNewPrimary = await idsIn(cluster, 'pg-1', DB);
    for (const id of [...ids('worker-2-replicated', 300), ...ids('worker-2-lost', 200), ...ids('worker-2-pending', 50)]) expect(onNewPrimary.ids.has(id)).toBe(true);
    expect(onNewPrimary.rows).toBe(1100);
    const status = JSON.parse((await agentOf('worker-2', 'status')).stdout);
    expect(status.lineage).toMatchObject({ epoch: epoch.id, confirmedEpoch: epoch.id, resendDue: false, outsideHistoryRows: 0, writerRefusals: 0 });
    expect((await lineage().confirmations('pg-1')).map((c) => [c.workerId, c.epochId, c.rowsResent])).toEqual([
      ['worker-1', epoch.id, 200],
      ['worker-2', epoch.id, 200],
    ]);
  });

  it('reports a failed drain with the agent error', async () => {
    const control = new LocalWorkerControl([{ id: 'worker-1', bufferPath: path.join(dir, 'absent.db'), configPath: config }]);
    const status = await waitForDrain(control, 'worker-1', await control.startDrain('worker-1', {}));
    expect(status).toEqual({ state: 'failed', error: `buffer file ${path.join(dir, 'absent.db')} does not exist (exit code 1)` });
    await expect(control.startDrain('worker-9', {})).rejects.toThrow("unknown worker 'worker-9': known workers are worker-1");
    const down = new LocalWorkerControl([{ id: 'worker-1', bufferPath: buffer, configPath: config, isUp: () => false }]);
    await expect(down.startDrain('worker-1', {})).rejects.toThrow('worker worker-1 is down: the drain cannot be delivered');
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
    const drains = await Promise.all([agent('drain', '--epoch', epoch.id), agent('drain')]);
    appending = false;
    await appender;
    for (const run of drains) expect(run.code).toBe(0);
    const deadline = Date.now() + 20_000;
    while (bufferLib.status().pendingRows > 0 && Date.now() < deadline) await sleep(50);
    await daemon.stop();
    await bufferLib.close();
    expect(acknowledged.length).toBeGreaterThan(50);
    const onNewPrimary = await idsIn(cluster, 'pg-1', DB);
    expect(onNewPrimary.rows).toBe(1100 + acknowledged.length);
    for (const id of acknowledged) expect(onNewPrimary.ids.has(id)).toBe(true);
  });

  it('after the failover, prune uses the lineage: root-epoch rows below the fork are prunable once replicas replayed', async () => {
    await cluster.rebuild('pg-0', 'pg-1');
    await cluster.repoint('pg-2', 'pg-1');
    await waitForReportedReplay(cluster, 'pg-1', 2);
    await sleep(1100); // every row is past the 1 s retention
    const result = JSON.parse((await agent('prune')).stdout);
    expect(result).toMatchObject({ writerTimeline: 2, replicas: 2, skippedBecause: null });
    const outbox = Outbox.open(buffer);
    const left = outbox.rows();
    outbox.close();
    // every row is either on the new epoch below the replicas' replay LSN, or on the root epoch below the fork: all gone
    expect(left).toEqual([]);
    expect(result.pruned).toBeGreaterThanOrEqual(550);
  });
});
