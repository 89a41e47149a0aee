/** The drill's target table on the cluster: created before the load, read (every id, where and when first committed) after it. */
import pg from 'pg';
import type { LocalCluster } from '../../local/local-cluster.js';

export const DRILL_TABLE = 'drill_events';
export const DRILL_STREAM = 'events';

export interface StoredRows {
  readonly ids: string[];
  /** Where (the node's port) and when each row was first committed. */
  readonly rows: { readonly port: number; readonly committedAtMs: number }[];
  readonly duplicates: number;
}

export async function createDrillTable(cluster: LocalCluster, primary: string): Promise<void> {
  const client = new pg.Client(cluster.clientConfig(primary));
  await client.connect();
  try {
    // node_port and committed_at record where and when each row was first committed (the chart, first write).
    await client.query(`CREATE TABLE ${DRILL_TABLE} (
      id text PRIMARY KEY,
      worker text NOT NULL,
      seq bigint NOT NULL,
      payload jsonb NOT NULL,
      node_port integer NOT NULL DEFAULT inet_server_port(),
      committed_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    for (const node of cluster.nodes()) if (node.id !== primary) await cluster.waitForReplay(node.id, rows[0]!.lsn, 30_000);
  } finally {
    await client.end();
  }
}

export async function readStoredRows(cluster: LocalCluster, nodeId: string): Promise<StoredRows> {
  const client = new pg.Client(cluster.clientConfig(nodeId));
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string; port: number; at: string }>(
      `SELECT id, node_port AS port, (extract(epoch FROM committed_at) * 1000)::float8::text AS at FROM ${DRILL_TABLE}`,
    );
    const { rows: dup } = await client.query<{ n: string }>(`SELECT (count(*) - count(DISTINCT id))::text AS n FROM ${DRILL_TABLE}`);
    return {
      ids: rows.map((r) => r.id),
      rows: rows.map((r) => ({ port: r.port, committedAtMs: Number(r.at) })),
      duplicates: Number(dup[0]!.n),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Where to count after the drill: the writer if it answers as a primary, else any node that does (a failed
 * last runbook may leave the writer pointing at a dead node). Undefined when no node is a writable primary.
 */
export async function countingNode(cluster: LocalCluster): Promise<string | undefined> {
  const candidates = [cluster.writerId(), cluster.primaryId(), ...cluster.nodes().map((n) => n.id)];
  for (const nodeId of [...new Set(candidates)]) {
    const node = cluster.nodes().find((n) => n.id === nodeId);
    if (!node || node.pid === null || node.fenced) continue;
    const client = new pg.Client({ ...cluster.clientConfig(nodeId), connectionTimeoutMillis: 2_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
      if (!rows[0]!.recovery) return nodeId;
    } catch {
      // not this one
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return undefined;
}
