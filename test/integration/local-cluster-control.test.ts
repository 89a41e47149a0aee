import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareLsn, isLsn } from '../../src/core/lsn.js';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { LocalClusterControl } from '../../src/local/local-cluster-control.js';
import { ClusterProcesses } from '../support/cluster-processes.js';
import { until } from '../support/poll.js';

async function connect(cluster: LocalCluster, nodeId: string): Promise<pg.Client> {
  const client = new pg.Client(cluster.clientConfig(nodeId));
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function sql(cluster: LocalCluster, nodeId: string, text: string): Promise<pg.QueryResultRow[]> {
  const client = await connect(cluster, nodeId);
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

describe('LocalClusterControl: the ClusterControl port over real PostgreSQL processes', () => {
  let cluster: LocalCluster;
  let control: LocalClusterControl;
  const processes = new ClusterProcesses();
  const remember = () => processes.remember(cluster);

  beforeAll(async () => {
    cluster = await LocalCluster.start({ replicas: 2 });
    remember();
    control = new LocalClusterControl(cluster, { noFailover: ['pg-2'] });
    await sql(cluster, 'pg-0', 'CREATE TABLE t (id int PRIMARY KEY)');
  });

  afterAll(async () => {
    if (cluster) await processes.stopAndExpectNothingLeft(cluster);
  });

  it('reports the topology: writer, roles, endpoints, priorities, no-failover tags', async () => {
    const ports = cluster.nodes().map((n) => n.port);
    expect(await control.topology()).toEqual({
      clusterId: cluster.clusterId,
      writerId: 'pg-0',
      nodes: [
        { id: 'pg-0', role: 'primary', endpoint: `127.0.0.1:${ports[0]}`, replicationName: 'pg-0', priority: 0, noFailover: false },
        { id: 'pg-1', role: 'replica', endpoint: `127.0.0.1:${ports[1]}`, replicationName: 'pg-1', priority: 1, noFailover: false },
        { id: 'pg-2', role: 'replica', endpoint: `127.0.0.1:${ports[2]}`, replicationName: 'pg-2', priority: 2, noFailover: true },
      ],
    });
  });

  it('writes-only fence: cuts open sessions, refuses new writes, keeps replicas streaming; unfence undoes it', async () => {
    const victim = await connect(cluster, 'pg-0');
    await victim.query('BEGIN');
    await victim.query('INSERT INTO t VALUES (1)'); // an open transaction that must never commit

    const result = await control.fence('pg-0', { writesOnly: true });
    expect(result).toMatchObject({ isolated: false, readOnly: true, sessionsTerminated: 1 });
    expect(isLsn(result.lsn)).toBe(true);
    await expect(victim.query('COMMIT')).rejects.toThrow(/terminat|connection error/);

    await expect(sql(cluster, 'pg-0', 'INSERT INTO t VALUES (2)')).rejects.toThrow(/cannot execute INSERT in a read-only transaction/);
    expect(await sql(cluster, 'pg-0', 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 0 }]);
    await cluster.waitForReplay('pg-1', result.lsn!); // replicas still receive everything up to the fence
    expect(cluster.nodes()[0]!.fenced).toBe(false);

    await control.unfence('pg-0');
    await sql(cluster, 'pg-0', 'INSERT INTO t VALUES (3)');
    expect(await sql(cluster, 'pg-0', 'SELECT id FROM t')).toEqual([{ id: 3 }]);
  });

  it('full fence: read-only, sessions cut, no new connection accepted, never restarted; idempotent', async () => {
    const idle = await connect(cluster, 'pg-0');
    const result = await control.fence('pg-0');
    expect(result).toMatchObject({ isolated: true, readOnly: true, sessionsTerminated: 1 });
    const lastLsn = result.lsn!;
    await expect(idle.query('SELECT 1')).rejects.toThrow(/terminat|connection error/);
    await expect(connect(cluster, 'pg-0')).rejects.toThrow(/pg_hba.conf rejects connection/);
    expect(cluster.nodes()[0]!.fenced).toBe(true);
    expect((await control.topology()).nodes[0]!.noFailover).toBe(true);

    expect(await control.fence('pg-0')).toEqual({ isolated: true, readOnly: true, sessionsTerminated: 0, detail: 'pg-0 was already fenced' });

    // Everything pg-0 acknowledged reached pg-1 (replication connections were open before the fence).
    await cluster.waitForReplay('pg-1', lastLsn);
    expect(await sql(cluster, 'pg-1', 'SELECT id FROM t')).toEqual([{ id: 3 }]);

    await cluster.stopNode('pg-0', 'fast');
    await expect(cluster.startNode('pg-0')).rejects.toThrow(/pg-0 is fenced and is never started again as it is/);
    await expect(control.promote('pg-0')).rejects.toThrow(/pg-0 is fenced/);
    await expect(control.repointWriter('pg-0')).rejects.toThrow(/pg-0 is fenced: the writer must not point at it/);
  });

  it('promotes a replica; promotionStatus says pending for a standby and done once writable', async () => {
    expect(await control.promotionStatus('pg-2')).toEqual({ state: 'pending', detail: 'pg-2 is still in recovery' });
    await control.promote('pg-1');
    await control.promote('pg-1'); // idempotent
    expect(await control.promotionStatus('pg-1')).toEqual({ state: 'done', detail: 'pg-1 accepts writes on timeline 2' });
    expect(await control.promotionStatus('pg-0')).toEqual({ state: 'failed', detail: 'pg-0 is not running' });
    await sql(cluster, 'pg-1', 'INSERT INTO t VALUES (4)');
  });

  it('repoints the writer', async () => {
    expect((await control.topology()).writerId).toBe('pg-0');
    await control.repointWriter('pg-1');
    expect((await control.topology()).writerId).toBe('pg-1');
    expect(readFileSync(cluster.writerFile, 'utf8').trim()).toBe(cluster.connectionString('pg-1'));
  });

  it('rebuilds the other replica and the fenced old primary as replicas of the new primary', async () => {
    expect(await control.rebuildReplica('pg-2', 'pg-1')).toEqual({ nodeId: 'pg-2' });
    expect(await control.rebuildReplica('pg-2', 'pg-1')).toEqual({ nodeId: 'pg-2' }); // same job
    expect(await control.rebuildReplica('pg-0', 'pg-1')).toEqual({ nodeId: 'pg-0' });
    expect(await until('the rebuild of pg-2', () => control.rebuildStatus('pg-2'), (s) => s.state !== 'pending', 60_000)).toEqual({ state: 'done', detail: 'pg-2 streams from pg-1' });
    expect(await until('the rebuild of pg-0', () => control.rebuildStatus('pg-0'), (s) => s.state !== 'pending', 60_000)).toEqual({ state: 'done', detail: 'pg-0 streams from pg-1' });
    remember();

    const topology = await control.topology();
    expect(topology.nodes.map((n) => [n.id, n.role, n.noFailover])).toEqual([
      ['pg-0', 'replica', false],
      ['pg-1', 'primary', false],
      ['pg-2', 'replica', true],
    ]);
    const lsn = (await sql(cluster, 'pg-1', 'SELECT pg_current_wal_lsn()::text AS l'))[0]!.l as string;
    await cluster.waitForReplay('pg-0', lsn);
    await cluster.waitForReplay('pg-2', lsn);
    expect(await sql(cluster, 'pg-0', 'SELECT id FROM t ORDER BY id')).toEqual([{ id: 3 }, { id: 4 }]);
    expect(compareLsn((await sql(cluster, 'pg-2', 'SELECT pg_last_wal_replay_lsn()::text AS l'))[0]!.l as string, lsn)).toBeGreaterThanOrEqual(0);
  });

  it('fences an unreachable node by isolation alone, and reports a rebuild it does not know as failed', async () => {
    await cluster.stopNode('pg-2', 'kill');
    expect(await control.fence('pg-2')).toEqual({
      isolated: true,
      readOnly: 'unreachable',
      sessionsTerminated: 0,
      detail: 'pg-2 is not running; isolated (pg_hba rejects every connection, never restarted as primary)',
    });
    await expect(cluster.startNode('pg-2')).rejects.toThrow(/pg-2 is fenced/);
    const fresh = new LocalClusterControl(cluster);
    expect(await fresh.rebuildStatus('pg-2')).toEqual({ state: 'failed', detail: 'no rebuild of pg-2 in progress and it does not stream from pg-1 (not connected)' });
    expect(await fresh.rebuildStatus('pg-0')).toEqual({ state: 'done', detail: 'pg-0 streams from pg-1' });
    await expect(fresh.fence('pg-7')).rejects.toThrow(/unknown node 'pg-7'/);
  });
});
