import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareLsn, isLsn, lsnDiff } from '../../src/core/lsn.js';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { ClusterProcesses } from '../support/cluster-processes.js';
import { until } from '../support/poll.js';
import { PgDatabaseProbe } from '../../src/pg/probe.js';
import type { NodeProbe, ReachableProbe } from '../../src/ports/database-probe.js';

const MONITOR = { user: 'probe_monitor', password: 'monitor-pw' };

async function sql(cluster: LocalCluster, nodeId: string, text: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client(cluster.clientConfig(nodeId));
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

function reachable(p: NodeProbe): ReachableProbe {
  if (!p.reachable) throw new Error(`${p.nodeId} unreachable: ${p.error}`);
  return p;
}

describe('PgDatabaseProbe on a real cluster, as a pg_monitor member (no superuser)', () => {
  let cluster: LocalCluster;
  let probe: PgDatabaseProbe;
  const processes = new ClusterProcesses();
  const remember = () => processes.remember(cluster);

  beforeAll(async () => {
    cluster = await LocalCluster.start({ replicas: 2 });
    remember();
    // What an RDS monitoring user gets: pg_monitor, nothing else.
    await sql(cluster, 'pg-0', `CREATE ROLE ${MONITOR.user} LOGIN PASSWORD '${MONITOR.password}' IN ROLE pg_monitor`);
    await sql(cluster, 'pg-0', 'CREATE TABLE t (id serial PRIMARY KEY, payload text)');
    await sql(cluster, 'pg-0', "INSERT INTO t (payload) VALUES ('x')");
    const lsn = (await sql(cluster, 'pg-0', 'SELECT pg_current_wal_lsn()::text AS l'))[0]!.l as string;
    await cluster.waitForReplay('pg-1', lsn);
    await cluster.waitForReplay('pg-2', lsn);
    probe = new PgDatabaseProbe((id) => ({ ...cluster.clientConfig(id), ...MONITOR }), { connectTimeoutMs: 1_000 });
  });

  afterAll(async () => {
    if (cluster) await processes.stopAndExpectNothingLeft(cluster);
  });

  it('reads the primary: writable, timeline 1, its current LSN and both streaming replicas', async () => {
    const p = reachable(await probe.probe('pg-0'));
    expect(p).toMatchObject({ nodeId: 'pg-0', inRecovery: false, timelineId: 1, receiveLsn: null, replayLsn: null, replayPaused: false, lastReplayAgeSeconds: null, acceptsWrites: true });
    expect(isLsn(p.currentLsn)).toBe(true);
    expect(Date.now() - Date.parse(p.sampledAt)).toBeLessThan(5_000);
    expect(p.replication.map((r) => [r.applicationName, r.state, r.clientAddr, r.syncState])).toEqual([
      ['pg-1', 'streaming', '127.0.0.1', 'async'],
      ['pg-2', 'streaming', '127.0.0.1', 'async'],
    ]);
    const later = (await sql(cluster, 'pg-0', 'SELECT pg_current_wal_lsn()::text AS l'))[0]!.l as string;
    for (const peer of p.replication) {
      expect(isLsn(peer.sentLsn) && isLsn(peer.replayLsn)).toBe(true);
      // current LSN (read during the probe) minus the replica's replay LSN
      expect(peer.replayLagBytes).toBeGreaterThanOrEqual(0);
      expect(peer.replayLagBytes).toBeLessThanOrEqual(lsnDiff(later, peer.replayLsn!));
    }
  });

  it('reads a replica: in recovery, read-only, receive/replay LSNs, replay age, timeline from its WAL receiver', async () => {
    const p = reachable(await probe.probe('pg-1'));
    expect(p).toMatchObject({ nodeId: 'pg-1', inRecovery: true, timelineId: 1, currentLsn: null, replayPaused: false, acceptsWrites: false, replication: [] });
    expect(isLsn(p.receiveLsn) && isLsn(p.replayLsn)).toBe(true);
    expect(compareLsn(p.receiveLsn!, p.replayLsn!)).toBeGreaterThanOrEqual(0);
    expect(p.lastReplayAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(p.lastReplayAgeSeconds).toBeLessThan(60);
  });

  it('reports the growing byte lag of a replica whose replay is paused', async () => {
    await cluster.pauseReplay('pg-2');
    const paused = reachable(await probe.probe('pg-2'));
    expect(paused.replayPaused).toBe(true);

    await sql(cluster, 'pg-0', "INSERT INTO t (payload) SELECT repeat('y', 200) FROM generate_series(1, 2000)");
    const first = await until(
      'pg-2 to report received-but-not-replayed WAL',
      async () => reachable(await probe.probe('pg-0')),
      (p) => (p.replication.find((r) => r.applicationName === 'pg-2')?.replayLagBytes ?? 0) > 100_000,
    );
    const lagOf = (p: ReachableProbe, id: string) => p.replication.find((r) => r.applicationName === id)!.replayLagBytes!;
    await sql(cluster, 'pg-0', "INSERT INTO t (payload) SELECT repeat('z', 200) FROM generate_series(1, 2000)");
    const second = reachable(await probe.probe('pg-0'));
    expect(lagOf(second, 'pg-2')).toBeGreaterThan(lagOf(first, 'pg-2'));
    // pg-1 keeps up
    const caughtUp = await until('pg-1 to catch up', async () => reachable(await probe.probe('pg-0')), (p) => lagOf(p, 'pg-1') === 0);
    expect(lagOf(caughtUp, 'pg-2')).toBeGreaterThan(200_000);

    const standby = reachable(await probe.probe('pg-2'));
    expect(lsnDiff(standby.receiveLsn!, standby.replayLsn!)).toBeGreaterThan(200_000);

    await cluster.resumeReplay('pg-2');
    await until('pg-2 lag back to 0', async () => reachable(await probe.probe('pg-0')), (p) => lagOf(p, 'pg-2') === 0);
    expect(reachable(await probe.probe('pg-2')).replayPaused).toBe(false);
  });

  it('says a write would be refused once default_transaction_read_only is on', async () => {
    await sql(cluster, 'pg-0', 'ALTER SYSTEM SET default_transaction_read_only = on');
    await sql(cluster, 'pg-0', 'SELECT pg_reload_conf()');
    try {
      expect(reachable(await probe.probe('pg-0'))).toMatchObject({ inRecovery: false, acceptsWrites: false });
    } finally {
      await sql(cluster, 'pg-0', 'ALTER SYSTEM RESET default_transaction_read_only');
      await sql(cluster, 'pg-0', 'SELECT pg_reload_conf()');
    }
    expect(reachable(await probe.probe('pg-0')).acceptsWrites).toBe(true);
  });

  it('still reads a standby timeline without pg_monitor (from pg_control_checkpoint())', async () => {
    await sql(cluster, 'pg-0', "CREATE ROLE plain_login LOGIN PASSWORD 'plain-pw'");
    await cluster.waitForReplay('pg-1', (await sql(cluster, 'pg-0', 'SELECT pg_current_wal_lsn()::text AS l'))[0]!.l as string);
    const plain = new PgDatabaseProbe((id) => ({ ...cluster.clientConfig(id), user: 'plain_login', password: 'plain-pw' }));
    const p = reachable(await plain.probe('pg-1'));
    expect(p).toMatchObject({ inRecovery: true, timelineId: 1, acceptsWrites: false });
    // Without pg_read_all_stats the WAL receiver's details are hidden: that is why the fallback exists.
    const hidden = await new PgDatabaseProbe((id) => ({ ...cluster.clientConfig(id), user: 'plain_login', password: 'plain-pw' })).probe('pg-0');
    expect(reachable(hidden).replication).toHaveLength(2);
    expect(reachable(hidden).replication.every((r) => r.state === null && r.replayLagBytes === null)).toBe(true);
  });

  it('reports the new topology after the primary crashes and pg-1 is promoted', async () => {
    await cluster.stopNode('pg-0', 'kill');
    const down = await probe.probe('pg-0');
    expect(down).toMatchObject({ nodeId: 'pg-0', reachable: false });
    expect(!down.reachable && down.error).toMatch(/ECONNREFUSED/);

    // A standby whose upstream is gone still answers, on the old timeline.
    expect(reachable(await probe.probe('pg-2'))).toMatchObject({ inRecovery: true, timelineId: 1 });

    await cluster.promote('pg-1');
    const promoted = reachable(await probe.probe('pg-1'));
    expect(promoted).toMatchObject({ inRecovery: false, timelineId: 2, acceptsWrites: true, replayLsn: null, replication: [] });

    await cluster.repoint('pg-2', 'pg-1');
    remember();
    const follower = reachable(await probe.probe('pg-2'));
    expect(follower).toMatchObject({ inRecovery: true, timelineId: 2, acceptsWrites: false });
    const withPeer = await until('pg-2 in pg-1 pg_stat_replication', async () => reachable(await probe.probe('pg-1')), (p) => p.replication.length === 1);
    expect(withPeer.replication.map((r) => [r.applicationName, r.state])).toEqual([['pg-2', 'streaming']]);
  });

  it('returns reachable:false with the reason instead of throwing', async () => {
    const wrongPassword = new PgDatabaseProbe((id) => ({ ...cluster.clientConfig(id), user: MONITOR.user, password: 'wrong' }));
    const denied = await wrongPassword.probe('pg-1');
    expect(denied).toMatchObject({ nodeId: 'pg-1', reachable: false });
    expect(!denied.reachable && denied.error).toMatch(/password authentication failed for user "probe_monitor"/);

    // A server that accepts TCP but never speaks: the connect timeout ends the probe.
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const hanging = new PgDatabaseProbe(() => ({ host: '127.0.0.1', port, user: 'x', password: 'y', database: 'postgres' }), { connectTimeoutMs: 300 });
      const began = Date.now();
      const result = await hanging.probe('silent');
      expect(Date.now() - began).toBeLessThan(3_000);
      expect(result).toMatchObject({ nodeId: 'silent', reachable: false });
      expect(!result.reachable && result.error).toMatch(/timeout/i);
    } finally {
      silent.close();
    }

    const unknown = await probe.probe('pg-9');
    expect(unknown).toMatchObject({ nodeId: 'pg-9', reachable: false });
    expect(!unknown.reachable && unknown.error).toMatch(/unknown node 'pg-9'/);
  });

  it('rejects a bad timeout option naming it', () => {
    expect(() => new PgDatabaseProbe(() => ({}), { connectTimeoutMs: 0 })).toThrow(/connectTimeoutMs must be a positive number of milliseconds, got 0/);
  });
});
