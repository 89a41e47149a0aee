import pg from 'pg';
import type { Lsn } from '../core/lsn.js';
import type { StreamConfig } from './config.js';
import type { ColumnKind } from './copy-rows.js';
import { copyFrom } from './pg-copy.js';
import { quoteIdentifier, quoteTable } from '../pg/identifiers.js';
import type { Epoch } from '../core/lineage.js';
import { confirmEpoch, readLineage } from '../pg/lineage.js';

export interface StreamBatch {
  readonly stream: StreamConfig;
  /** JSON object texts, as stored in the outbox. */
  readonly payloads: readonly string[];
}

export interface ReplicaReplay {
  readonly name: string;
  readonly state: string;
  readonly replayLsn: Lsn | null;
}

export interface WriterReplication {
  readonly timelineId: number;
  readonly currentLsn: Lsn;
  readonly replicas: readonly ReplicaReplay[];
}

/** A failure caused by the content of the rows (SQLSTATE class 22 data exception, 23 constraint violation). */
export function isRowContentError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

// Read in the session right after the statement's commit. The insert LSN is >= the end of every WAL record
// already inserted, including our commit record and any commit we saw as a conflict: an upper bound for both.
// pg_walfile_name() names the WAL file with the timeline the server inserts on (right after a promotion too).
const MARKER_SQL = `SELECT pg_current_wal_insert_lsn()::text AS lsn,
  ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int AS timeline`;

/** One session on the writer. A session whose socket failed is `broken` and must be replaced. */
export class PgSink {
  private brokenReason: string | null = null;

  static async connect(config: pg.ClientConfig): Promise<PgSink> {
    const client = new pg.Client(config);
    const sink = new PgSink(client);
    // An idle client whose server goes away emits 'error'; without a listener the process would crash.
    client.on('error', (error) => {
      sink.brokenReason = error.message;
    });
    client.on('end', () => {
      sink.brokenReason ??= 'connection ended';
    });
    try {
      await client.connect();
      // 'Committed' must mean flushed to the writer's disk: a server running synchronous_commit=off could
      // lose a batch the buffer already marked synced. Raised for this session only.
      await client.query("SELECT set_config('synchronous_commit', 'local', false) WHERE current_setting('synchronous_commit') = 'off'");
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    return sink;
  }

  private constructor(private readonly client: pg.Client) {}

  get broken(): boolean {
    return this.brokenReason !== null;
  }

  /**
   * Sends one stream's rows as ONE autocommit statement:
   *   INSERT INTO t (cols) SELECT cols FROM json_populate_recordset(NULL::t, $1) ON CONFLICT (key) DO NOTHING
   * The stored JSON payloads go as one parameter and PostgreSQL maps them onto the table's row type, so
   * types and numbers beyond 2^53 are PostgreSQL's, not JavaScript's (and the parsing runs on the database
   * server, not on the worker). Resolves to the rows inserted (the others were already present). The
   * statement is on the wire when this returns: the caller may work locally while PostgreSQL runs it.
   */
  insert(batch: StreamBatch): Promise<number> {
    const { table, columnList, keyList } = identifiers(batch.stream);
    return this.client
      .query(
        `INSERT INTO ${table} (${columnList}) SELECT ${columnList} FROM json_populate_recordset(NULL::${table}, $1::json)
         ON CONFLICT (${keyList}) DO NOTHING`,
        [`[${batch.payloads.join(',')}]`],
      )
      .then((result) => result.rowCount ?? 0);
  }

  /**
   * Loads the rows (COPY text data for the stream's columns, see copy-rows.ts) with ONE autocommit
   * `COPY t (cols) FROM STDIN`. Not idempotent by itself: it fails as a whole (unique_violation) when any row
   * is already there, and the caller then sends the same rows with `insert`. Resolves to the rows inserted.
   */
  copy(stream: StreamConfig, data: Buffer): Promise<number> {
    const { table, columnList } = identifiers(stream);
    return copyFrom(this.client, `COPY ${table} (${columnList}) FROM STDIN`, data);
  }

  /**
   * How each of the stream's columns maps JSON (copy-rows.ts), from the catalog (domains resolved to their
   * base type); null when a column is missing from the table (the INSERT path then reports PostgreSQL's error).
   */
  async columnKinds(stream: StreamConfig): Promise<ColumnKind[] | null> {
    const { rows } = await this.client.query<{ name: string; is_json: boolean; typcategory: string; typtype: string }>(
      `WITH RECURSIVE base AS (
         SELECT a.attname AS name, t.oid, t.typname, t.typcategory, t.typtype, t.typbasetype
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
          WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY($2::text[])
         UNION ALL
         SELECT b.name, t.oid, t.typname, t.typcategory, t.typtype, t.typbasetype FROM base b JOIN pg_type t ON t.oid = b.typbasetype
          WHERE b.typtype = 'd')
       SELECT name, oid IN ('json'::regtype, 'jsonb'::regtype) AS is_json, typcategory::text, typtype::text FROM base WHERE typtype <> 'd'`,
      [quoteTable(stream.table), stream.columns],
    );
    const byName = new Map(rows.map((r) => [r.name, r]));
    const kinds: ColumnKind[] = [];
    for (const column of stream.columns) {
      const type = byName.get(column);
      if (type === undefined) return null;
      kinds.push(type.is_json ? 'json' : type.typcategory === 'A' || type.typtype === 'c' || type.typtype === 'p' ? 'other' : 'scalar');
    }
    return kinds;
  }

  /** The commit position for a sync marker, read right after a commit in the same session. */
  async marker(): Promise<{ readonly timelineId: number; readonly lsn: Lsn }> {
    const { rows } = await this.client.query<{ lsn: string; timeline: number }>(MARKER_SQL);
    return { timelineId: rows[0]!.timeline, lsn: rows[0]!.lsn };
  }

  /** The writer's epochs (null without the rds_failover schema) and the timeline it writes on. */
  async lineage(): Promise<{ readonly epochs: Epoch[] | null; readonly timelineId: number }> {
    const { rows } = await this.client.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
    if (rows[0]!.recovery) throw new Error('the writer is a standby (in recovery): it accepts no writes');
    const epochs = await readLineage(this.client);
    return { epochs, timelineId: (await this.marker()).timelineId };
  }

  /** This worker converged on `epochId`: recorded in rds_failover.worker_epochs for the runbook and status. */
  async confirmEpoch(workerId: string, epochId: string, rowsResent: number): Promise<void> {
    await confirmEpoch(this.client, workerId, epochId, rowsResent);
  }

  /** The writer's timeline, current LSN and its standbys' replay positions (pg_stat_replication). */
  async replication(): Promise<WriterReplication> {
    const marker = await this.marker();
    const { rows } = await this.client.query<{ name: string; state: string; replay_lsn: string | null }>(
      'SELECT application_name AS name, state, replay_lsn::text AS replay_lsn FROM pg_stat_replication ORDER BY application_name',
    );
    return {
      timelineId: marker.timelineId,
      currentLsn: marker.lsn,
      replicas: rows.map((r) => ({ name: r.name, state: r.state, replayLsn: r.replay_lsn })),
    };
  }

  async close(): Promise<void> {
    this.brokenReason ??= 'closed';
    await this.client.end().catch(() => undefined);
  }
}


function identifiers(stream: StreamConfig): { table: string; columnList: string; keyList: string } {
  return {
    table: quoteTable(stream.table),
    columnList: stream.columns.map(quoteIdentifier).join(', '),
    keyList: stream.key.map(quoteIdentifier).join(', '),
  };
}
