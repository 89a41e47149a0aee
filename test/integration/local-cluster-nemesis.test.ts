/**
 * What the drill's faults need from LocalCluster: stalling a node (SIGSTOP/SIGCONT of its processes),
 * replication and client connections through TCP proxies that can be cut, and re-reading the state another
 * process changed.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { childPids } from '../../src/local/processes.js';
import { TcpProxy } from '../../src/local/tcp-proxy.js';
import { ClusterProcesses } from '../support/cluster-processes.js';
import { until } from '../support/poll.js';

async function sql<T extends pg.QueryResultRow>(config: pg.ClientConfig, text: string): Promise<T[]> {
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 1_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The process state letter of /proc/<pid>/stat: 'T' is stopped by a signal. */
function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
}

describe('LocalCluster for the drill faults (pause, routes, refresh)', () => {
  let cluster: LocalCluster;
  const processes = new ClusterProcesses();
  const replication = new Map<string, TcpProxy>();
  let controller: TcpProxy;

  beforeAll(async () => {
    // One replication proxy per replica, aimed at the upstream the cluster names when it writes the replica's conninfo.
    const upstreamPort = new Map<string, number>();
    replication.set('pg-1', await TcpProxy.start({ name: 'replication pg-1', target: () => upstreamPort.get('pg-1')! }));
    cluster = await LocalCluster.start({
      replicas: 1,
      replicationPort: (upstream, replica) => {
        upstreamPort.set(replica, upstream.port);
        return replication.get(replica)!.port;
      },
    });
    controller = await TcpProxy.start({ name: 'controller pg-0', target: () => cluster.nodes().find((n) => n.id === 'pg-0')!.port });
    processes.remember(cluster);
    await sql(cluster.clientConfig('pg-0'), 'CREATE TABLE t (id int PRIMARY KEY)');
  });

  afterAll(async () => {
    await controller?.close();
    for (const p of replication.values()) await p.close();
    if (cluster) await processes.stopAndExpectNothingLeft(cluster);
  });

  it('streams replication through the proxy, and a cut of that proxy stops it until healed', async () => {
    const proxy = replication.get('pg-1')!;
    const receiver = () => sql<{ status: string; sender_port: number }>(cluster.clientConfig('pg-1'), 'SELECT status, sender_port FROM pg_stat_wal_receiver');
    expect((await receiver())[0]).toMatchObject({ status: 'streaming', sender_port: proxy.port });
    proxy.cut('reset');
    await until('the WAL receiver to lose its upstream', receiver, (rows) => rows[0]?.status !== 'streaming');
    await sql(cluster.clientConfig('pg-0'), 'INSERT INTO t VALUES (1)');
    const lsn = (await sql<{ lsn: string }>(cluster.clientConfig('pg-0'), 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
    proxy.heal();
    await cluster.waitForReplay('pg-1', lsn, 30_000);
    expect(await sql(cluster.clientConfig('pg-1'), 'SELECT id FROM t')).toEqual([{ id: 1 }]);
  });

  it('routedVia sends a view\'s connections through another port; the cluster itself keeps the node\'s own', async () => {
    const view = cluster.routedVia((id) => (id === 'pg-0' ? controller.port : cluster.nodes().find((n) => n.id === id)!.port));
    expect(view.clientConfig('pg-0').port).toBe(controller.port);
    expect(cluster.clientConfig('pg-0').port).not.toBe(controller.port);
    expect(view.connectionString('pg-0')).toBe(cluster.connectionString('pg-0'));
    expect(await sql(view.clientConfig('pg-0'), 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    controller.cut('drop');
    await expect(sql(view.clientConfig('pg-0'), 'SELECT 1')).rejects.toThrow(/timeout/i);
    expect(await sql(cluster.clientConfig('pg-0'), 'SELECT 2 AS two')).toEqual([{ two: 2 }]);
    // The view's own methods use its route: waitForReplay connects through the cut proxy and fails.
    await expect(view.waitForReplay('pg-0', '0/0', 1_000)).rejects.toThrow(/pg-0: cannot connect on port/);
    controller.heal();
    await view.waitForReplay('pg-0', '0/0', 5_000);
  });

  it('pauseNode stops every process of the node (no answer), resumeNode lets it go on', async () => {
    const pids = cluster.pauseNode('pg-0');
    const postmaster = cluster.nodes().find((n) => n.id === 'pg-0')!.pid!;
    try {
      expect(pids).toContain(postmaster);
      expect(pids.length).toBeGreaterThan(3); // checkpointer, walwriter, WAL sender ... are children
      // Signals are delivered asynchronously; a backend that exited just before stays a zombie (nobody reaps it now).
      await until('every process of pg-0 to be stopped', () => pids.map(procState), (states) => states.every((s) => s === 'T' || s === 'Z'));
      await expect(sql(cluster.clientConfig('pg-0'), 'SELECT 1')).rejects.toThrow(/timeout/i);
    } finally {
      cluster.resumeNode('pg-0');
    }
    await until('pg-0 to run again', () => [postmaster, ...childPids(postmaster)].map(procState), (states) => !states.includes('T'));
    expect(await sql(cluster.clientConfig('pg-0'), 'SELECT 3 AS three')).toEqual([{ three: 3 }]);
  });

  it('refresh re-reads what another process changed (state.json)', async () => {
    const other = LocalCluster.attach(cluster.baseDir);
    await other.setWriter('pg-1');
    expect(cluster.writerId()).toBe('pg-0');
    cluster.refresh();
    expect(cluster.writerId()).toBe('pg-1');
    await cluster.setWriter('pg-0');
  });

  it('refuses to pause a node that is not running, naming it', async () => {
    await cluster.stopNode('pg-1', 'fast');
    expect(() => cluster.pauseNode('pg-1')).toThrow(/pg-1 is not running: there is nothing to pause/);
  });
});
