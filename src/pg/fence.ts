/**
 * Write fencing that works on RDS PostgreSQL, where the runbook has no superuser and ALTER SYSTEM is refused.
 *
 * Chosen mechanism (what RDS allows the master user, a member of rds_superuser):
 * - `ALTER DATABASE <db> SET default_transaction_read_only = on` on every connectable database: every new
 *   session starts read-only (needs ownership of the database; the master user owns what it created).
 * - `pg_terminate_backend(pid, 5000)` on every other client session (rds_superuser holds pg_signal_backend;
 *   superuser sessions such as rdsadmin's are skipped: non-superusers may not signal them), so no open
 *   transaction can still commit. Replication connections are walsenders, not client backends: they keep
 *   streaming, which a switchover needs.
 * - then `pg_current_wal_lsn()`: every commit the node acknowledged is at or below it.
 *
 * Limits, documented in docs/runbook.md: a client may still `SET default_transaction_read_only = off` or
 * `BEGIN READ WRITE` on purpose, and a role-level setting overrides the database-level one; the hard fence is
 * the quarantine security group, this is the belt that covers the seconds before it applies. The setting is
 * WAL-logged, so a replica that replays it inherits it: `clearDatabaseWriteFence` runs on the new primary
 * after promotion.
 */
import pg from 'pg';
import type { Lsn } from '../core/lsn.js';

export interface DatabaseWriteFence {
  /** false when the node is in recovery (a standby cannot write anyway). */
  readonly wasPrimary: boolean;
  /** Databases now read-only for new sessions. */
  readonly fencedDatabases: readonly string[];
  /** Databases the fence could not be set on, with the reason. */
  readonly failures: readonly string[];
  /** Databases left alone because the fencing role does not own them (only when no explicit list was given). */
  readonly skipped: readonly string[];
  readonly sessionsTerminated: number;
  readonly lsn: Lsn;
}

export interface FenceQueryOptions {
  /**
   * The application databases to fence; one that cannot be fenced makes the node count as not read-only.
   * @default every connectable, non-template database the fencing role owns (others are reported as skipped)
   */
  readonly databases?: readonly string[];
  /** How long pg_terminate_backend waits for each session to be gone. @default 5000 */
  readonly terminateWaitMs?: number;
}

const DATABASES_SQL = `SELECT datname, pg_has_role(current_user, datdba, 'MEMBER') AS owned
  FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'rdsadmin' ORDER BY datname`;

export async function fenceDatabaseWrites(client: pg.Client, options: FenceQueryOptions = {}): Promise<DatabaseWriteFence> {
  const recovery = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
  if (recovery.rows[0]!.r) {
    const lsn = await client.query<{ lsn: Lsn }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
    return { wasPrimary: false, fencedDatabases: [], failures: [], skipped: [], sessionsTerminated: 0, lsn: lsn.rows[0]!.lsn };
  }
  // This session may itself have started read-only (a re-run after an earlier fence): ALTER needs read-write.
  await client.query('SET default_transaction_read_only = off');
  const skipped: string[] = [];
  let databases = options.databases;
  if (!databases) {
    const all = (await client.query<{ datname: string; owned: boolean }>(DATABASES_SQL)).rows;
    databases = all.filter((r) => r.owned).map((r) => r.datname);
    skipped.push(...all.filter((r) => !r.owned).map((r) => r.datname));
  }
  const fencedDatabases: string[] = [];
  const failures: string[] = [];
  for (const db of databases) {
    try {
      await client.query(`ALTER DATABASE ${client.escapeIdentifier(db)} SET default_transaction_read_only = on`);
      fencedDatabases.push(db);
    } catch (error) {
      failures.push(`${db}: ${(error as Error).message}`);
    }
  }
  const waitMs = options.terminateWaitMs ?? 5_000;
  const terminated = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n
       FROM (SELECT pg_terminate_backend(a.pid, $1::bigint) AS gone
               FROM pg_stat_activity a
               LEFT JOIN pg_roles r ON r.oid = a.usesysid
              WHERE a.backend_type = 'client backend'
                AND a.pid <> pg_backend_pid()
                AND NOT COALESCE(r.rolsuper, false)) t
      WHERE gone`,
    [waitMs],
  );
  const lsn = await client.query<{ lsn: Lsn }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return { wasPrimary: true, fencedDatabases, failures, skipped, sessionsTerminated: terminated.rows[0]!.n, lsn: lsn.rows[0]!.lsn };
}

/** Databases whose database-wide default is read-only (what fenceDatabaseWrites leaves, also after replication). */
export async function writeFencedDatabases(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ datname: string }>(
    `SELECT d.datname
       FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
      WHERE s.setrole = 0 AND 'default_transaction_read_only=on' = ANY (s.setconfig)
      ORDER BY d.datname`,
  );
  return rows.map((r) => r.datname);
}

/** Undo the fence on this node (the old primary of a failed switchover, or a promoted replica that replayed it). */
export async function clearDatabaseWriteFence(client: pg.Client): Promise<string[]> {
  const fenced = await writeFencedDatabases(client);
  // Connected to a fenced database, this session started read-only too.
  if (fenced.length > 0) await client.query('SET default_transaction_read_only = off');
  for (const db of fenced) await client.query(`ALTER DATABASE ${client.escapeIdentifier(db)} RESET default_transaction_read_only`);
  return fenced;
}

/** What the AWS cluster control needs from PostgreSQL, by node (so tests can substitute it). */
export interface WriteFencer {
  /** 'unreachable' when no connection could be made within the timeout. */
  fence(nodeId: string): Promise<DatabaseWriteFence | { readonly unreachable: string }>;
  /** Returns the databases it made writable again. */
  clear(nodeId: string): Promise<string[]>;
}

/** WriteFencer over short-lived `pg` connections; `resolve` gives each node's connection settings (TLS, credentials). */
export class PgWriteFencer implements WriteFencer {
  constructor(
    private readonly resolve: (nodeId: string) => Promise<pg.ClientConfig>,
    private readonly options: FenceQueryOptions & { readonly connectTimeoutMs?: number } = {},
  ) {}

  async fence(nodeId: string): Promise<DatabaseWriteFence | { readonly unreachable: string }> {
    const client = await this.connect(nodeId);
    if ('unreachable' in client) return client;
    try {
      return await fenceDatabaseWrites(client, this.options);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async clear(nodeId: string): Promise<string[]> {
    const client = await this.connect(nodeId);
    if ('unreachable' in client) throw new Error(`${nodeId}: cannot connect to clear the write fence: ${client.unreachable}`);
    try {
      return await clearDatabaseWriteFence(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private async connect(nodeId: string): Promise<pg.Client | { unreachable: string }> {
    const config = await this.resolve(nodeId);
    const client = new pg.Client({
      ...config,
      application_name: 'rds-failover-fence',
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 3_000,
      statement_timeout: 30_000,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return client;
    } catch (error) {
      await client.end().catch(() => undefined);
      return { unreachable: (error as Error).message };
    }
  }
}
