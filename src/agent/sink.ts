import pg from 'pg';
import type { Lsn } from '../core/lsn.js';
import type { StreamConfig } from './config.js';
import type { SyncMarker } from './outbox.js';
import { copyFrom, copyTextField } from './pg-copy.js';

/**
 * How a batch reaches the target table. Both are one transaction ending in
 * `INSERT ... ON CONFLICT (key) DO NOTHING`; bench/buffer.bench.ts measures them side by side.
 * - 'json-recordset': the stored JSON payloads go as one parameter, PostgreSQL maps them onto the table's
 *   row type (json_populate_recordset), so types and big numbers are PostgreSQL's, not JavaScript's.
 * - 'copy-staging': the payloads are COPYed into a session temp table, then upserted from it.
 */
export type InsertMethod = 'json-recordset' | 'copy-staging';
export const DEFAULT_INSERT_METHOD: InsertMethod = 'json-recordset';

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

// Read in the session right after COMMIT. The insert LSN is >= the end of every WAL record already
// inserted, including our commit record and any commit we saw as a conflict: an upper bound for both.
// pg_walfile_name() names the WAL file with the timeline the server inserts on (right after a promotion too).
const MARKER_SQL = `SELECT pg_current_wal_insert_lsn()::text AS lsn,
  ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int AS timeline`;

/** One session on the writer. A session whose socket failed is `broken` and must be replaced. */
export class PgSink {
  private brokenReason: string | null = null;
  private readonly stagingReady = new Set<string>();

  static async connect(config: pg.ClientConfig, method: InsertMethod = DEFAULT_INSERT_METHOD): Promise<PgSink> {
    const client = new pg.Client(config);
    const sink = new PgSink(client, method);
    // An idle client whose server goes away emits 'error'; without a listener the process would crash.
    client.on('error', (error) => {
      sink.brokenReason = error.message;
    });
    client.on('end', () => {
      sink.brokenReason ??= 'connection ended';
    });
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    return sink;
  }

  private constructor(
    private readonly client: pg.Client,
    private readonly method: InsertMethod,
  ) {}

  get broken(): boolean {
    return this.brokenReason !== null;
  }

  /**
   * Inserts every batch in one transaction and returns, after COMMIT, the rows inserted (the others were
   * already present) and the sync marker. A failure before COMMIT rolls back; a failure reading the marker
   * after COMMIT throws too, so the caller leaves the rows pending and sends them again.
   */
  async commit(batches: readonly StreamBatch[]): Promise<{ inserted: number; marker: SyncMarker }> {
    let inserted = 0;
    await this.client.query('BEGIN');
    try {
      for (const batch of batches) {
        if (batch.payloads.length === 0) continue;
        inserted += this.method === 'copy-staging' ? await this.insertViaCopy(batch) : await this.insertViaJson(batch);
      }
      // COMMIT of a transaction that failed silently answers ROLLBACK: never count that as committed.
      const outcome = await this.client.query('COMMIT');
      if (outcome.command !== 'COMMIT') throw new Error(`COMMIT answered ${outcome.command}: the batch was not committed`);
    } catch (error) {
      if (!this.broken) await this.client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    return { inserted, marker: await this.marker() };
  }

  async marker(): Promise<SyncMarker> {
    const { rows } = await this.client.query<{ lsn: string; timeline: number }>(MARKER_SQL);
    return { timelineId: rows[0]!.timeline, lsn: rows[0]!.lsn };
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

  private async insertViaJson(batch: StreamBatch): Promise<number> {
    const { table, columnList, keyList } = identifiers(batch.stream);
    const result = await this.client.query(
      `INSERT INTO ${table} (${columnList}) SELECT ${columnList} FROM json_populate_recordset(NULL::${table}, $1::json)
       ON CONFLICT (${keyList}) DO NOTHING`,
      [`[${batch.payloads.join(',')}]`],
    );
    return result.rowCount ?? 0;
  }

  private async insertViaCopy(batch: StreamBatch): Promise<number> {
    const { table, columnList, keyList } = identifiers(batch.stream);
    const staging = 'rfa_staging';
    if (!this.stagingReady.has(staging)) {
      await this.client.query(`CREATE TEMP TABLE IF NOT EXISTS ${staging} (doc json NOT NULL) ON COMMIT DELETE ROWS`);
      this.stagingReady.add(staging);
    }
    await copyFrom(this.client, `COPY ${staging} (doc) FROM STDIN`, batch.payloads.map((p) => copyTextField(p)).join('\n') + '\n');
    const result = await this.client.query(
      `INSERT INTO ${table} (${columnList}) SELECT r.* FROM ${staging} s,
         LATERAL (SELECT ${columnList} FROM json_populate_record(NULL::${table}, s.doc)) r
       ON CONFLICT (${keyList}) DO NOTHING`,
    );
    await this.client.query(`TRUNCATE ${staging}`);
    return result.rowCount ?? 0;
  }
}

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** 'schema.table' or 'table', each part quoted. */
export function quoteTable(table: string): string {
  return table.split('.').map(quoteIdentifier).join('.');
}

function identifiers(stream: StreamConfig): { table: string; columnList: string; keyList: string } {
  return {
    table: quoteTable(stream.table),
    columnList: stream.columns.map(quoteIdentifier).join(', '),
    keyList: stream.key.map(quoteIdentifier).join(', '),
  };
}
