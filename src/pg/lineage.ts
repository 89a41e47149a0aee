/**
 * The lineage in PostgreSQL (schema rds_failover): one row per epoch (src/core/lineage.ts), recorded on the
 * primary that starts it and replicated like any table, so a replica promoted later carries the lineage it
 * replayed; and the workers' confirmations that they converged on an epoch. The schema is created by the stack's
 * database-roles custom resource (AWS), the local cluster, or `rds-failover-agent init-writer`.
 */
import pg from 'pg';
import { headOf, isEpochId, type Epoch } from '../core/lineage.js';
import type { Lsn } from '../core/lsn.js';
import type { LineageStore, WorkerConfirmation } from '../ports/lineage-store.js';
import { isLsn } from '../core/lsn.js';
import { quoteIdentifier } from './identifiers.js';
import type { NodeSessions } from './node-sessions.js';
import { PRIMARY_TIMELINE_SQL } from './replication-queries.js';

export const LINEAGE_SCHEMA = 'rds_failover';

/** Idempotent DDL (every statement IF NOT EXISTS). */
export const LINEAGE_DDL = `
CREATE SCHEMA IF NOT EXISTS rds_failover;
CREATE TABLE IF NOT EXISTS rds_failover.lineage (
  epoch        uuid PRIMARY KEY,
  parent_epoch uuid REFERENCES rds_failover.lineage (epoch),
  generation   integer NOT NULL CHECK (generation >= 1),
  fork_lsn     pg_lsn,
  timeline_id  integer NOT NULL CHECK (timeline_id >= 1),
  node_id      text NOT NULL,
  execution_id text,
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS rds_failover.worker_epochs (
  worker_id    text NOT NULL,
  epoch        uuid NOT NULL REFERENCES rds_failover.lineage (epoch),
  rows_resent  bigint NOT NULL CHECK (rows_resent >= 0),
  confirmed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (worker_id, epoch)
);`;

interface EpochRow {
  epoch: string;
  parent_epoch: string | null;
  generation: number;
  fork_lsn: string | null;
  timeline_id: number;
  node_id: string;
  execution_id: string | null;
  created_at: string;
}

/** Every epoch the node has (its own chain), or null when the schema is missing. */
export async function readLineage(client: pg.ClientBase): Promise<Epoch[] | null> {
  const { rows: exists } = await client.query<{ ok: boolean }>("SELECT to_regclass('rds_failover.lineage') IS NOT NULL AS ok");
  if (!exists[0]!.ok) return null;
  const { rows } = await client.query<EpochRow>(
    `SELECT epoch::text, parent_epoch::text, generation, fork_lsn::text, timeline_id, node_id, execution_id,
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at
       FROM rds_failover.lineage`,
  );
  return rows.map(toEpoch);
}

/** Records an epoch (a no-op when it is there already) and returns it as stored. */
export async function insertEpoch(client: pg.ClientBase, epoch: Omit<Epoch, 'createdAt'>): Promise<Epoch> {
  await client.query(
    `INSERT INTO rds_failover.lineage (epoch, parent_epoch, generation, fork_lsn, timeline_id, node_id, execution_id)
     VALUES ($1, $2, $3, $4::pg_lsn, $5, $6, $7) ON CONFLICT (epoch) DO NOTHING`,
    [epoch.id, epoch.parentId, epoch.generation, epoch.forkLsn, epoch.timelineId, epoch.nodeId, epoch.executionId],
  );
  const stored = (await readLineage(client))?.find((e) => e.id === epoch.id);
  if (!stored) throw new Error(`epoch ${epoch.id} was not recorded in rds_failover.lineage`);
  return stored;
}

/**
 * Creates the schema and, on a node with no epoch yet, the root epoch of `nodeId` on its current timeline (a
 * primary). Run as a role that may CREATE in the database (the master user; locally the superuser).
 */
export async function initLineage(client: pg.ClientBase, options: { readonly nodeId: string; readonly rootId: string }): Promise<Epoch[]> {
  if (!isEpochId(options.rootId)) throw new Error(`rootId: expected a UUID, got '${options.rootId}'`);
  await client.query(LINEAGE_DDL);
  const existing = (await readLineage(client))!;
  if (existing.length > 0) return existing;
  const { rows } = await client.query<{ timeline: number }>(`SELECT ${PRIMARY_TIMELINE_SQL} AS timeline`);
  await insertEpoch(client, { id: options.rootId, parentId: null, generation: 1, forkLsn: null, timelineId: rows[0]!.timeline, nodeId: options.nodeId, executionId: null });
  return (await readLineage(client))!;
}

/**
 * Records a new epoch on this primary, continuing its newest one up to `forkLsn` (null: keeping none of it), on the
 * timeline it writes on now. What the runbook does after a promotion, done by hand: for a primary promoted outside
 * the runbook (`rds-failover-agent init-writer` adopts it), and in tests and benchmarks that play a failover.
 */
export async function recordChildEpoch(client: pg.ClientBase, options: { readonly id: string; readonly nodeId: string; readonly forkLsn: Lsn | null; readonly executionId?: string }): Promise<Epoch> {
  const epochs = await readLineage(client);
  if (epochs === null) throw new Error('rds_failover.lineage does not exist here: create it first (initLineage)');
  const head = headOf(epochs, options.nodeId);
  const { rows } = await client.query<{ timeline: number }>(`SELECT ${PRIMARY_TIMELINE_SQL} AS timeline`);
  return insertEpoch(client, {
    id: options.id,
    parentId: head.id,
    generation: head.generation + 1,
    forkLsn: options.forkLsn,
    timelineId: rows[0]!.timeline,
    nodeId: options.nodeId,
    executionId: options.executionId ?? null,
  });
}

/** Records `epochs` (another database's lineage, say) where missing, parents first; creates the schema if needed. */
export async function copyLineage(client: pg.ClientBase, epochs: readonly Epoch[]): Promise<void> {
  await client.query(LINEAGE_DDL);
  for (const epoch of [...epochs].sort((a, b) => a.generation - b.generation)) await insertEpoch(client, epoch);
}

/** What the agent role needs: read the lineage, record its own confirmations. */
export async function grantLineageToAgent(client: pg.ClientBase, role: string): Promise<void> {
  const r = quoteIdentifier(role);
  await client.query(`GRANT USAGE ON SCHEMA rds_failover TO ${r}`);
  await client.query(`GRANT SELECT ON rds_failover.lineage TO ${r}`);
  await client.query(`GRANT SELECT, INSERT, UPDATE ON rds_failover.worker_epochs TO ${r}`);
}

/** What the monitor role needs: read both tables (status, unconfirmed workers). */
export async function grantLineageToMonitor(client: pg.ClientBase, role: string): Promise<void> {
  const r = quoteIdentifier(role);
  await client.query(`GRANT USAGE ON SCHEMA rds_failover TO ${r}`);
  await client.query(`GRANT SELECT ON rds_failover.lineage, rds_failover.worker_epochs TO ${r}`);
}

/** A worker converged on `epochId` (every row outside its history re-sent): upserted by the agent. */
export async function confirmEpoch(client: pg.ClientBase, workerId: string, epochId: string, rowsResent: number): Promise<void> {
  await client.query(
    `INSERT INTO rds_failover.worker_epochs (worker_id, epoch, rows_resent) VALUES ($1, $2, $3)
     ON CONFLICT (worker_id, epoch) DO UPDATE SET rows_resent = excluded.rows_resent, confirmed_at = excluded.confirmed_at`,
    [workerId, epochId, rowsResent],
  );
}

/** Each worker's newest confirmation (of any epoch); empty when the schema is missing. */
export async function readConfirmations(client: pg.ClientBase): Promise<WorkerConfirmation[]> {
  const { rows: exists } = await client.query<{ ok: boolean }>("SELECT to_regclass('rds_failover.worker_epochs') IS NOT NULL AS ok");
  if (!exists[0]!.ok) return [];
  const { rows } = await client.query<{ worker_id: string; epoch: string; rows_resent: string; confirmed_at: string }>(
    `SELECT DISTINCT ON (w.worker_id) w.worker_id, w.epoch::text, w.rows_resent::text,
            to_char(w.confirmed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS confirmed_at
       FROM rds_failover.worker_epochs w JOIN rds_failover.lineage l ON l.epoch = w.epoch
      ORDER BY w.worker_id, l.generation DESC, w.confirmed_at DESC`,
  );
  return rows.map((r) => ({ workerId: r.worker_id, epochId: r.epoch, rowsResent: Number(r.rows_resent), confirmedAt: r.confirmed_at }));
}

function toEpoch(row: EpochRow): Epoch {
  if (row.fork_lsn !== null && !isLsn(row.fork_lsn)) throw new Error(`rds_failover.lineage: epoch ${row.epoch} has an invalid fork_lsn '${row.fork_lsn}'`);
  return {
    id: row.epoch,
    parentId: row.parent_epoch,
    generation: row.generation,
    forkLsn: row.fork_lsn,
    timelineId: row.timeline_id,
    nodeId: row.node_id,
    executionId: row.execution_id,
    createdAt: row.created_at,
  };
}

/** LineageStore over short sessions to each node (the runbook's credentials: the master user in AWS). */
export class PgLineageStore implements LineageStore {
  constructor(
    private readonly connection: (nodeId: string) => pg.ClientConfig | Promise<pg.ClientConfig>,
    /** sessions: the probe's sessions of the current runbook action, used instead of connecting again. */
    private readonly options: { readonly connectTimeoutMs?: number; readonly sessions?: NodeSessions } = {},
  ) {}

  read(nodeId: string): Promise<Epoch[] | null> {
    return this.session(nodeId, (c) => readLineage(c));
  }

  record(nodeId: string, epoch: Omit<Epoch, 'createdAt'>): Promise<Epoch> {
    return this.session(nodeId, async (c) => {
      // A cluster set up before the lineage existed: the runbook's role (the master user) creates it.
      if ((await readLineage(c)) === null) await c.query(LINEAGE_DDL);
      return insertEpoch(c, epoch);
    });
  }

  confirmations(nodeId: string): Promise<WorkerConfirmation[]> {
    return this.session(nodeId, (c) => readConfirmations(c));
  }

  private session<T>(nodeId: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const fresh = () => this.freshSession(nodeId, fn);
    return this.options.sessions ? this.options.sessions.use(nodeId, fn, fresh) : fresh();
  }

  private async freshSession<T>(nodeId: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const config = await this.connection(nodeId);
    const client = new pg.Client({
      ...config,
      application_name: 'rds-failover-lineage',
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 3_000,
      statement_timeout: 10_000,
      query_timeout: 11_000,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      throw new Error(`${nodeId}: cannot read or write its lineage: ${(error as Error).message}`);
    }
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
