import { existsSync, mkdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { formatLsn, parseLsn, type Lsn } from '../core/lsn.js';
import type { StreamConfig } from './config.js';
import { PAYLOAD_SEPARATOR } from './copy-rows.js';
import { historyOf, isInHistory, newestEpoch, type Epoch, type HistorySpan } from '../core/lineage.js';
import { ADDED_COLUMNS, SCHEMA_SQL, SCHEMA_VERSION } from './outbox-schema.js';
import { isSqliteBusy, openSqlite, type SqliteDatabase, type SqliteStatement, type SqliteTransaction } from './sqlite.js';
import { RowRejectedError, validateRow } from './row-validation.js';

/** Where a batch was committed: the writer's epoch and timeline, and an upper bound of the commit's LSN. */
export interface SyncMarker {
  readonly epochId: string;
  readonly timelineId: number;
  readonly lsn: Lsn;
}

export interface OutboxRow {
  readonly seq: number;
  readonly stream: string;
  readonly id: string;
  readonly payload: string;
}

/** An append refused because the buffer has no room (disk full, or maxBufferBytes reached): nothing of it was stored. */
export class BufferFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BufferFullError';
  }
}

export interface AppendResult {
  readonly ids: string[];
  /** The first rejected row (index into the input) and why; rows before it are committed. */
  readonly rejected?: { readonly index: number; readonly error: RowRejectedError };
}

/** One caller's rows in a group commit. */
export interface AppendGroup {
  readonly streamName: string;
  readonly stream: StreamConfig | undefined;
  readonly rows: readonly unknown[];
}

/** What a resend scan sends: the synced rows whose marker is outside these spans, and (unless false) the pending rows. */
export interface ResendSelection {
  readonly history: readonly HistorySpan[];
  /** @default true */
  readonly pending?: boolean;
}

export interface OutboxCounts {
  readonly pendingRows: number;
  readonly oldestPendingCreatedAtMs: number | null;
  readonly pendingByStream: Record<string, number>;
  readonly syncedRows: number;
  readonly syncedBeforeMs: number;
  readonly rejectedRows: number;
  /** Synced rows whose marker is outside the newest epoch's history: re-sent by the next resend scan. */
  readonly outsideHistoryRows: number;
}

/**
 * The SQLite outbox. Every method is synchronous (better-sqlite3 or node:sqlite, see sqlite.ts): an append returns after its commit
 * is on disk (WAL, synchronous=FULL). Several processes may open the same file.
 */
export class Outbox {
  private readonly db: SqliteDatabase;
  private readonly insertRow: SqliteStatement<[string, string, string, number]>;
  private readonly existingRow: SqliteStatement<[string, string], { payload: string }>;
  private readonly markRows: SqliteStatement<[number, string, number, number, string]>;
  private readonly overlappingRanges: SqliteStatement<[number, number], ResyncRange>;
  private readonly insertRange: SqliteStatement<[ResyncRange]>;
  private readonly deleteRange: SqliteStatement<[number]>;
  private readonly rangeAt: SqliteStatement<[number, number], ResyncRange>;
  private readonly nextRangeStart: SqliteStatement<[number], { first_seq: number }>;

  /** Set while appends are capped (maxBufferBytes): [max_page_count for appends, the connection's own limit]. */
  private appendPageLimit: readonly [number, number] | null = null;
  private readonly statements = new Map<string, SqliteStatement<never, unknown>>();
  /** The append transaction, made once (appendGroups' input is in `appending` while it runs). */
  private readonly appendTransaction: SqliteTransaction<AppendResult[]>;
  private appending: { readonly groups: readonly AppendGroup[]; readonly nowMs: number } | undefined;
  /** How often this connection found the buffer locked by another and waited (a sign of concurrent writers). */
  busyWaits = 0;

  static open(file: string, options: { busyTimeoutMs?: number; mustExist?: boolean; maxBytes?: number } = {}): Outbox {
    if (options.mustExist && !existsSync(file)) throw new Error(`buffer file ${file} does not exist`);
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    // No SQLite busy handler (it sleeps 1..100 ms between tries and starves waiters under contention):
    // `locked()` retries with sub-millisecond jittered waits instead.
    const db = openSqlite(file);
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    try {
      retryWhileBusy(file, busyTimeoutMs, () => {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        ensureSchema(db);
      });
      const outbox = new Outbox(db, file, busyTimeoutMs);
      if (options.maxBytes !== undefined) outbox.setMaxBytes(options.maxBytes);
      return outbox;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  private constructor(
    db: SqliteDatabase,
    readonly file: string,
    private readonly busyTimeoutMs: number,
  ) {
    this.db = db;
    this.insertRow = db.prepare('INSERT INTO outbox (stream, id, payload, created_at_ms) VALUES (?, ?, ?, ?) ON CONFLICT (stream, id) DO NOTHING');
    this.existingRow = db.prepare('SELECT payload FROM outbox WHERE stream = ? AND id = ?');
    this.markRows = db.prepare(
      `UPDATE outbox SET state = 'synced', synced_at_ms = ?, marker_epoch = ?, marker_timeline = ?, marker_lsn = ?, error = NULL
       WHERE seq IN (SELECT value FROM json_each(?)) AND state <> 'rejected'`,
    );
    this.overlappingRanges = db.prepare('SELECT * FROM outbox_resync WHERE first_seq <= ? AND last_seq >= ? ORDER BY first_seq');
    this.insertRange = db.prepare(
      `INSERT INTO outbox_resync (first_seq, last_seq, synced_at_ms, marker_epoch, marker_timeline, marker_lsn)
       VALUES (@first_seq, @last_seq, @synced_at_ms, @marker_epoch, @marker_timeline, @marker_lsn)`,
    );
    this.deleteRange = db.prepare('DELETE FROM outbox_resync WHERE first_seq = ?');
    this.rangeAt = db.prepare(
      'SELECT * FROM (SELECT * FROM outbox_resync WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1) WHERE last_seq >= ?',
    );
    this.nextRangeStart = db.prepare('SELECT first_seq FROM outbox_resync WHERE first_seq > ? ORDER BY first_seq LIMIT 1');
    this.appendTransaction = db.transaction(() => {
      const { groups, nowMs } = this.appending!;
      return groups.map((group) => this.insertRows(group, nowMs));
    });
  }

  /**
   * The statement for `sql`, prepared once per connection (preparing costs more than running most of these;
   * the sync loop runs the same few statements on every pass).
   */
  private prepared<P extends unknown[] = unknown[], R = unknown>(sql: string): SqliteStatement<P, R> {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      if (this.statements.size >= 256) this.statements.clear(); // SQL built from a config or a drain's selection: bounded anyway
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement as SqliteStatement<P, R>;
  }

  /** Runs `fn` (one statement or one transaction), retrying while another process holds the lock. */
  private locked<T>(fn: () => T): T {
    return retryWhileBusy(this.file, this.busyTimeoutMs, fn, () => (this.busyWaits += 1));
  }

  /**
   * Caps what appends may grow the file to (null: no cap). SQLite's max_page_count of this connection, set
   * around each append only, so a sync or prune on the same connection is never refused for lack of room.
   */
  setMaxBytes(maxBytes: number | null): void {
    if (maxBytes === null) {
      this.appendPageLimit = null;
      return;
    }
    if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new Error(`maxBytes must be a positive integer, got ${JSON.stringify(maxBytes)}`);
    const pageSize = Number(this.db.pragma('page_size', { simple: true }));
    const own = this.appendPageLimit?.[1] ?? Number(this.db.pragma('max_page_count', { simple: true }));
    this.appendPageLimit = [Math.max(1, Math.floor(maxBytes / pageSize)), own];
  }

  /** The database's size (its pages; the WAL file not counted): what a cap is compared with. */
  databaseBytes(): number {
    return Number(this.db.pragma('page_count', { simple: true })) * Number(this.db.pragma('page_size', { simple: true }));
  }

  /** The cap on the database's size for appends, in bytes (null: no cap; the volume's free space is not known here). */
  get maxBytes(): number | null {
    if (this.appendPageLimit === null) return null;
    return this.appendPageLimit[0] * Number(this.db.pragma('page_size', { simple: true }));
  }

  /**
   * Validates and commits rows in one durable transaction, stopping at the first rejected row (the rows
   * before it stay committed). Re-appending an id with the same payload acknowledges it again; with a
   * different payload it is rejected, since the sink would keep only the first.
   */
  appendMany(streamName: string, stream: StreamConfig | undefined, rows: readonly unknown[], nowMs = Date.now()): AppendResult {
    return this.appendGroups([{ streamName, stream, rows }], nowMs)[0]!;
  }

  /**
   * Group commit: several callers' appends in one durable transaction (one fsync), each with appendMany's
   * rules; a rejected row stops only its own group.
   */
  appendGroups(groups: readonly AppendGroup[], nowMs = Date.now()): AppendResult[] {
    const limit = this.appendPageLimit;
    if (limit !== null) this.db.pragma(`max_page_count = ${limit[0]}`);
    this.appending = { groups, nowMs };
    try {
      return this.locked(() => this.appendTransaction.immediate()); // recomputed if a busy retry reruns it
    } catch (error) {
      if (!isSqliteFull(error)) throw error;
      const cap = limit === null ? '' : ` or the buffer reached maxBufferBytes (${this.maxBytes} bytes)`;
      throw new BufferFullError(`buffer ${this.file} is full (the volume has no space left${cap}): the append was refused and nothing of it was stored; appends succeed again once there is room (synced rows pruned, the volume grown${limit === null ? '' : ', or maxBufferBytes raised'})`);
    } finally {
      this.appending = undefined;
      if (limit !== null) this.db.pragma(`max_page_count = ${limit[1]}`);
    }
  }

  private insertRows({ streamName, stream, rows }: AppendGroup, nowMs: number): AppendResult {
    const ids: string[] = [];
    for (let index = 0; index < rows.length; index++) {
      try {
        const row = validateRow(streamName, stream, rows[index]);
        if (this.insertRow.run(streamName, row.id, row.payload, nowMs).changes === 0) {
          const existing = this.existingRow.get(streamName, row.id);
          if (existing && existing.payload !== row.payload) {
            throw new RowRejectedError(`id '${row.id}' is already in the buffer for stream '${streamName}' with a different payload`);
          }
        }
        ids.push(row.id);
      } catch (error) {
        if (!(error instanceof RowRejectedError)) throw error;
        return { ids, rejected: { index, error } };
      }
    }
    return { ids };
  }

  append(streamName: string, stream: StreamConfig | undefined, row: unknown, nowMs = Date.now()): string {
    const result = this.appendMany(streamName, stream, [row], nowMs);
    if (result.rejected) throw result.rejected.error;
    return result.ids[0]!;
  }

  // '+stream' keeps SQLite off the (stream, id) index: these queries must walk seq order (the pending index,
  // the rowid range) and stop after LIMIT rows, not sort every row of the stream for each batch.

  /** The oldest pending rows of the given streams (rows of streams not configured here stay pending). */
  pendingBatch(streams: readonly string[], limit: number, afterSeq = 0): OutboxRow[] {
    if (streams.length === 0) return [];
    return this.locked(() =>
      this
        .prepared(
          `SELECT seq, stream, id, payload FROM outbox
           WHERE state = 'pending' AND seq > ? AND +stream IN (${streams.map(() => '?').join(', ')})
           ORDER BY seq LIMIT ?`,
        )
        .raw(true)
        .all(afterSeq, ...streams, limit)
        .map(toRow),
    );
  }

  /**
   * Records that rows are committed on the writer at `marker` (and, in the same transaction, agent state):
   * `seqs` row by row, and each of `ranges` (first, last seq; drains only) as one outbox_resync record,
   * which is valid only if every row in it was in the committed statement (see `resendBlock`). A row
   * marked row by row first gets the values of any resync range over it, which is dropped: so a range is
   * always newer than the own marker of every synced row it covers.
   * The lineage invariant, checked in the same write transaction as the marking: a marker outside the history
   * of the newest epoch this buffer knows (the batch raced a fork: its writer was superseded while it ran) marks
   * nothing, and the rows stay as they were (pending, or synced outside the history) for the sync loop to send
   * again. A lineage merge is a write transaction too, so it either comes before (and this refuses) or after
   * (and its resend scan picks the rows up). Returns whether the rows were marked.
   */
  markSynced(
    seqs: readonly number[],
    marker: SyncMarker,
    syncedAtMs = Date.now(),
    state?: Record<string, unknown>,
    ranges: readonly (readonly [number, number])[] = [],
  ): boolean {
    const lsn = lsnToInteger(marker.lsn);
    let marked = false;
    const write = this.db.transaction(() => {
      if (!isInHistory({ epochId: marker.epochId, lsn: BigInt(lsn) }, this.currentHistory())) {
        if (state) this.writeState(state);
        return;
      }
      marked = true;
      if (seqs.length > 0) {
        let low = seqs[0]!;
        let high = seqs[0]!;
        for (const seq of seqs) {
          if (seq < low) low = seq;
          if (seq > high) high = seq;
        }
        for (const range of this.overlappingRanges.all(high, low)) {
          // only ranges over a row marked now: the others stay valid (a drain marks single rows and runs together)
          if (seqs.some((seq) => seq >= range.first_seq && seq <= range.last_seq)) this.foldRange(range);
        }
        this.markRows.run(syncedAtMs, marker.epochId, marker.timelineId, lsn, JSON.stringify(seqs));
      }
      for (const [first, last] of ranges) {
        this.putRange({ first_seq: first, last_seq: last, synced_at_ms: syncedAtMs, marker_epoch: marker.epochId, marker_timeline: marker.timelineId, marker_lsn: lsn });
      }
      if (state) this.writeState(state);
    });
    this.locked(() => write.immediate());
    return marked;
  }

  /** The new range replaces the parts of older ranges it overlaps: its claim is the newest for those rows. */
  private putRange(range: ResyncRange): void {
    for (const old of this.overlappingRanges.all(range.last_seq, range.first_seq)) {
      this.deleteRange.run(old.first_seq);
      // Only the named parameters (node:sqlite refuses unknown ones, such as a column added to the table later).
      const keep = { synced_at_ms: old.synced_at_ms, marker_epoch: old.marker_epoch, marker_timeline: old.marker_timeline, marker_lsn: old.marker_lsn };
      if (old.first_seq < range.first_seq) this.insertRange.run({ ...keep, first_seq: old.first_seq, last_seq: range.first_seq - 1 });
      if (old.last_seq > range.last_seq) this.insertRange.run({ ...keep, first_seq: range.last_seq + 1, last_seq: old.last_seq });
    }
    this.insertRange.run(range);
  }

  /** Writes a range's marker into the synced rows it covers and drops it (inside a transaction). */
  private foldRange(range: ResyncRange): void {
    this
      .prepared("UPDATE outbox SET synced_at_ms = ?, marker_epoch = ?, marker_timeline = ?, marker_lsn = ? WHERE seq BETWEEN ? AND ? AND state = 'synced'")
      .run(range.synced_at_ms, range.marker_epoch, range.marker_timeline, range.marker_lsn, range.first_seq, range.last_seq);
    this.deleteRange.run(range.first_seq);
  }

  /**
   * Moves every outbox_resync range into its rows' own marker columns, one range per transaction (row by
   * row work, kept off the drain's path; prune runs it before it reads markers).
   */
  foldResyncRanges(): number {
    let folded = 0;
    for (;;) {
      const range = this.locked(() => this.prepared<[], ResyncRange>('SELECT * FROM outbox_resync ORDER BY first_seq LIMIT 1').get());
      if (range === undefined) return folded;
      const write = this.db.transaction(() => {
        const current = this.prepared<[number], ResyncRange>('SELECT * FROM outbox_resync WHERE first_seq = ?').get(range.first_seq);
        if (current) this.foldRange(current);
      });
      this.locked(() => write.immediate());
      folded += 1;
    }
  }

  /**
   * A row PostgreSQL (or validation) refuses for its content: kept, never sent again until re-queued. A synced
   * row too (a drain re-sent it and the new writer refused it): it is no longer on the current writer.
   */
  markRejected(seq: number, error: string): void {
    this.locked(() => this.prepared("UPDATE outbox SET state = 'rejected', error = ? WHERE seq = ? AND state IN ('pending', 'synced')").run(error, seq));
  }

  maxSeq(): number {
    return this.locked(() => this.prepared<[], { m: number | null }>('SELECT max(seq) AS m FROM outbox').get()!.m ?? 0);
  }

  /** Rows a drain examines: every pending or synced row up to `maxSeq` (counted on the two partial indexes). */
  countExamined(maxSeq: number): number {
    return this.locked(
      () =>
        this
          .prepared<[number, number], { n: number }>(
            `SELECT (SELECT count(*) FROM outbox INDEXED BY outbox_pending WHERE state = 'pending' AND seq <= ?)
                  + (SELECT count(*) FROM outbox INDEXED BY outbox_synced_at WHERE state = 'synced' AND seq <= ?) AS n`,
          )
          .get(maxSeq, maxSeq)!.n,
    );
  }

  /**
   * The next rows a drain re-sends, after `afterSeq` and up to `maxSeq`, scanning about `limit` rows: the
   * pending rows of the given streams, and the synced rows the selection picks by their effective marker (a
   * resync range's, else their own). The synced rows come per stream as their seqs, their runs and one
   * buffer of their payloads (no string per row: this is the bulk of a drain). Read in one transaction, so
   * the seqs and the payloads agree. A block may hold no row to re-send and still move `end` on; the scan is
   * over when `end` reaches `maxSeq`.
   * The window is walked segment by segment: inside a resync range every synced row has the range's marker,
   * so whether they are re-sent is decided once for the segment; outside, by each row's own marker.
   */
  resendBlock(streams: readonly string[], selection: ResendSelection, afterSeq: number, maxSeq: number, limit: number): ResendBlock {
    const empty: ResendBlock = { end: maxSeq, pending: [], synced: [] };
    if (streams.length === 0 || afterSeq >= maxSeq) return empty;
    // One integer per scanned row, so every row comes back (gaps show) without a JS array per row:
    // (seq * width + stream index) * 4 + selected * 2 + pending. Index streams.length: not a configured stream.
    const width = streams.length + 1;
    if ((maxSeq + 1) * width * 4 > Number.MAX_SAFE_INTEGER) throw new Error(`seq ${maxSeq} is too large to scan ${streams.length} streams exactly`);
    const { sql, params } = resendPredicate(selection);
    const streamIndex = `CASE stream ${streams.map(() => 'WHEN ? THEN ?').join(' ')} ELSE ${streams.length} END`;
    const streamParams = streams.flatMap((name, index) => [name, index]);
    const codes = (syncedChoice: string) =>
      this
        .prepared(
          `SELECT ((seq * ${width} + ${streamIndex}) * 4) + CASE state WHEN 'pending' THEN ${selection.pending === false ? 1 : 3} WHEN 'synced' THEN 2 * (${syncedChoice}) ELSE 0 END
             FROM outbox WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
        )
        .pluck();
    const payloads = (syncedChoice: string) =>
      this
        .prepared(
          // in rowid order in practice, but not ordered on purpose (that sorts): only the set matters
          `SELECT CAST(group_concat(payload, char(${PAYLOAD_SEPARATOR.charCodeAt(0)})) AS BLOB)
             FROM outbox WHERE seq > ? AND seq <= ? AND +stream = ? AND state = 'synced' AND ${syncedChoice}`,
        )
        .pluck();
    const byOwnMarker = { codes: codes(sql), payloads: payloads(sql), params };
    const inRange = {
      resent: { codes: codes('1'), payloads: payloads('1'), params: [] as (string | number)[] },
      kept: { codes: codes('0'), payloads: payloads('0'), params: [] as (string | number)[] },
    };
    const pendingRows = this
      .prepared(
        `SELECT seq, stream, id, payload FROM outbox
          WHERE state = 'pending' AND seq > ? AND seq <= ? AND +stream IN (${streams.map(() => '?').join(', ')}) ORDER BY seq`,
      )
      .raw(true);
    const read = this.db.transaction((): ResendBlock => {
      const groups: { seqs: number[]; runs: [number, number][]; singles: number[]; payloads: Buffer[]; runStart: number }[] = [];
      let pendingCount = 0;
      let previousStream = -1; // the stream of the row just before, if it is a selected synced row
      let previousSeq = 0;
      let after = afterSeq;
      let scanned = 0;
      const closeRun = (stream: number) => {
        const group = groups[stream]!;
        if (group.runStart === previousSeq) group.singles.push(previousSeq);
        else group.runs.push([group.runStart, previousSeq]);
      };
      while (after < maxSeq) {
        const range = this.rangeAt.get(after + 1, after + 1);
        let end = maxSeq;
        let segment = byOwnMarker;
        if (range !== undefined) {
          segment = isResent(range, selection) ? inRange.resent : inRange.kept;
          end = Math.min(end, range.last_seq);
        } else {
          const next = this.nextRangeStart.get(after);
          if (next !== undefined) end = Math.min(end, next.first_seq - 1);
        }
        const budget = limit - scanned;
        const rows = segment.codes.all(...streamParams, ...segment.params, after, end, budget) as number[];
        const segmentStreams = new Set<number>();
        for (const code of rows) {
          const flags = code % (width * 4);
          const seq = (code - flags) / (width * 4);
          const stream = flags >> 2;
          const resent = (flags & 2) === 2 && stream < streams.length;
          if (!resent || (flags & 1) === 1) {
            // not re-sent, or pending (marked row by row): either way the row ends a run
            if (previousStream >= 0) closeRun(previousStream);
            previousStream = -1;
            previousSeq = seq;
            if (resent) pendingCount += 1;
            continue;
          }
          const group = (groups[stream] ??= { seqs: [], runs: [], singles: [], payloads: [], runStart: 0 });
          group.seqs.push(seq);
          segmentStreams.add(stream);
          if (previousStream !== stream) {
            if (previousStream >= 0) closeRun(previousStream);
            group.runStart = seq;
          }
          previousStream = stream;
          previousSeq = seq;
        }
        const segmentEnd = rows.length < budget ? end : previousSeq; // a short answer: the segment is done
        for (const stream of segmentStreams) {
          groups[stream]!.payloads.push(segment.payloads.get(after, segmentEnd, streams[stream]!, ...segment.params) as Buffer);
        }
        scanned += rows.length;
        after = segmentEnd;
        // Even with nothing selected: a short read transaction (a checkpoint waits for readers).
        if (scanned >= limit) break;
      }
      if (previousStream >= 0) closeRun(previousStream);
      const pending = pendingCount === 0 ? [] : (pendingRows.all(afterSeq, after, ...streams) as unknown[]).map(toRow);
      const synced: SyncedRows[] = [];
      groups.forEach((group, stream) => {
        const parts = group.payloads.flatMap((part, i) => (i === 0 ? [part] : [SEPARATOR_BYTE, part]));
        const payloads = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        synced.push({ stream: streams[stream]!, seqs: group.seqs, runs: group.runs, singles: group.singles, payloads });
      });
      return { end: after, pending, synced };
    });
    return this.locked(() => read.deferred());
  }

  /** The rows with these seqs that are still in the buffer, in seq order. */
  rowsBySeq(seqs: readonly number[]): OutboxRow[] {
    return this.locked(() =>
      this
        .prepared('SELECT seq, stream, id, payload FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq')
        .raw(true)
        .all(JSON.stringify(seqs))
        .map(toRow),
    );
  }

  pendingCount(): number {
    return this.locked(() => this.prepared<[], { n: number }>("SELECT count(*) AS n FROM outbox WHERE state = 'pending'").get()!.n);
  }

  /** Deletes up to `limit` synced rows synced before `beforeMs` whose marker lies in `history`; returns how many. */
  pruneChunk(history: readonly HistorySpan[], beforeMs: number, limit: number): number {
    if (history.length === 0) return 0;
    this.foldResyncRanges();
    const { sql, params } = historyPredicate(history);
    // Walks the synced_at index (rows past retention), then checks their markers.
    return this.locked(
      () =>
        this
          .prepared(
            `DELETE FROM outbox WHERE seq IN (
               SELECT seq FROM outbox WHERE state = 'synced' AND synced_at_ms < ? AND (${sql}) LIMIT ?)`,
          )
          .run(beforeMs, ...params, limit).changes,
    );
  }

  counts(syncedBeforeMs: number): OutboxCounts {
    return this.locked(() => this.readCounts(syncedBeforeMs));
  }

  private readCounts(syncedBeforeMs: number): OutboxCounts {
    const pending = this
      .prepared<[], { stream: string; n: number; oldest: number }>(
        "SELECT stream, count(*) AS n, min(created_at_ms) AS oldest FROM outbox WHERE state = 'pending' GROUP BY stream",
      )
      .all();
    const pendingByStream: Record<string, number> = {};
    for (const p of pending) pendingByStream[p.stream] = p.n;
    const oldest = pending.length === 0 ? null : Math.min(...pending.map((p) => p.oldest));
    const count = (sql: string, ...params: (number | string)[]) => this.prepared<(number | string)[], { n: number }>(sql).get(...params)!.n;
    const history = historyPredicate(this.currentHistory(), 'coalesce(r.marker_epoch, o.marker_epoch)', 'coalesce(r.marker_lsn, o.marker_lsn)');
    return {
      pendingRows: pending.reduce((sum, p) => sum + p.n, 0),
      oldestPendingCreatedAtMs: oldest,
      pendingByStream,
      syncedRows: count("SELECT count(*) AS n FROM outbox WHERE state = 'synced'"),
      syncedBeforeMs: count(
        `SELECT count(*) AS n FROM outbox o ${EFFECTIVE_JOIN} WHERE o.state = 'synced' AND coalesce(r.synced_at_ms, o.synced_at_ms) < ?`,
        syncedBeforeMs,
      ),
      rejectedRows: count("SELECT count(*) AS n FROM outbox WHERE state = 'rejected'"),
      outsideHistoryRows: count(`SELECT count(*) AS n FROM outbox o ${EFFECTIVE_JOIN} WHERE o.state = 'synced' AND NOT (${history.sql})`, ...history.params),
    };
  }

  /** Every row with its state and marker, for tests and tooling that audit the buffer. */
  rows(): AuditedRow[] {
    return this.locked(() => this.readRows());
  }

  private readRows(): AuditedRow[] {
    return this
      .prepared<[], { seq: number; stream: string; id: string; state: string; marker_epoch: string | null; marker_timeline: number | null; marker_lsn: number | null; error: string | null }>(
        `SELECT o.seq, o.stream, o.id, o.state, coalesce(r.marker_epoch, o.marker_epoch) AS marker_epoch,
           coalesce(r.marker_timeline, o.marker_timeline) AS marker_timeline,
           coalesce(r.marker_lsn, o.marker_lsn) AS marker_lsn, o.error FROM outbox o ${EFFECTIVE_JOIN} ORDER BY o.seq`,
      )
      .all()
      .map((r) => ({
        seq: r.seq,
        stream: r.stream,
        id: r.id,
        state: r.state,
        markerEpoch: r.marker_epoch,
        markerTimeline: r.marker_timeline,
        markerLsn: r.marker_lsn === null ? null : formatLsn(BigInt(r.marker_lsn)),
        error: r.error,
      }));
  }

  getState<T>(key: string): T | undefined {
    return this.locked(() => this.readState<T>(key));
  }

  setState(values: Record<string, unknown>): void {
    const write = this.db.transaction(() => this.writeState(values));
    this.locked(() => write.immediate());
  }

  /** Read-modify-write of one agent_state value in one write transaction (counters shared by several processes). */
  updateState<T>(key: string, update: (current: T | undefined) => T): T {
    let next!: T;
    const write = this.db.transaction(() => {
      next = update(this.readState<T>(key));
      this.writeState({ [key]: next });
    });
    this.locked(() => write.immediate());
    return next;
  }

  private writeState(values: Record<string, unknown>): void {
    const upsert = this.prepared('INSERT INTO agent_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    for (const [key, value] of Object.entries(values)) upsert.run(key, JSON.stringify(value ?? null));
  }

  /** The epochs this buffer learned from writers (src/core/lineage.ts). */
  lineage(): Epoch[] {
    return this.locked(() => this.readLineage());
  }

  /** The newest epoch known: every writer must be on it (or the buffer learns a newer one from the writer). */
  lineageHead(): Epoch | undefined {
    return newestEpoch(this.lineage());
  }

  /**
   * Adds the epochs not known yet, in one write transaction; each addition bumps the lineage version, which
   * tells the sync loop a resend scan is due (rows synced outside the new history go out again).
   */
  mergeLineage(epochs: readonly Epoch[], nowMs = Date.now()): { added: number; version: number } {
    let added = 0;
    let version = 0;
    const write = this.db.transaction(() => {
      const insert = this.prepared(
        `INSERT INTO lineage (epoch, parent_epoch, generation, fork_lsn, timeline, node_id, execution_id, created_at, learned_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (epoch) DO NOTHING`,
      );
      for (const e of epochs) added += insert.run(e.id, e.parentId, e.generation, e.forkLsn, e.timelineId, e.nodeId, e.executionId, e.createdAt, nowMs).changes;
      version = this.readState<number>(LineageStateKey.Version) ?? 0;
      if (added > 0) this.writeState({ [LineageStateKey.Version]: (version += 1) });
    });
    this.locked(() => write.immediate());
    return { added, version };
  }

  /** Which markers count as synced now: the history of the newest epoch (everything, before any epoch is known). */
  private currentHistory(): HistorySpan[] {
    const epochs = this.readLineage();
    const head = newestEpoch(epochs);
    return head === undefined ? [] : historyOf(epochs, head.id);
  }

  private readLineage(): Epoch[] {
    return this
      .prepared<[], { epoch: string; parent_epoch: string | null; generation: number; fork_lsn: string | null; timeline: number; node_id: string; execution_id: string | null; created_at: string }>(
        'SELECT epoch, parent_epoch, generation, fork_lsn, timeline, node_id, execution_id, created_at FROM lineage',
      )
      .all()
      .map((r) => ({
        id: r.epoch,
        parentId: r.parent_epoch,
        generation: r.generation,
        forkLsn: r.fork_lsn,
        timelineId: r.timeline,
        nodeId: r.node_id,
        executionId: r.execution_id,
        createdAt: r.created_at,
      }));
  }

  private readState<T>(key: string): T | undefined {
    const row = this.prepared<[string], { value: string }>('SELECT value FROM agent_state WHERE key = ?').get(key);
    return row === undefined ? undefined : (JSON.parse(row.value) as T);
  }

  /** TRUNCATE checkpoint; `busy` when a reader or writer kept it from completing. */
  checkpoint(): { busy: boolean; walFrames: number; checkpointedFrames: number } {
    const [row] = this.locked(() => this.db.pragma('wal_checkpoint(TRUNCATE)')) as { busy: number; log: number; checkpointed: number }[];
    return { busy: row!.busy !== 0, walFrames: row!.log, checkpointedFrames: row!.checkpointed };
  }

  /** Problems `PRAGMA integrity_check` reports (empty when healthy). */
  integrityProblems(): string[] {
    const rows = this.locked(() => this.db.pragma('integrity_check')) as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).filter((r) => r !== 'ok');
  }

  journalMode(): string {
    return String(this.locked(() => this.db.pragma('journal_mode', { simple: true })));
  }

  /** Bytes of the database file plus its -wal and -shm files. */
  fileBytes(): number {
    return ['', '-wal', '-shm'].reduce((sum, suffix) => {
      try {
        return sum + statSync(this.file + suffix).size;
      } catch {
        return sum;
      }
    }, 0);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** What a drain re-sends next (see `resendBlock`). */
export interface ResendBlock {
  /** Every row up to this seq was examined: the next block starts after it (the scan is over at maxSeq). */
  readonly end: number;
  /** Pending rows of the streams, sent (and checked) like any pending row. */
  readonly pending: readonly OutboxRow[];
  readonly synced: readonly SyncedRows[];
}

/** One stream's synced rows in a drain block. */
export interface SyncedRows {
  readonly stream: string;
  /** In seq order. */
  readonly seqs: readonly number[];
  /**
   * Runs of at least two rows with no other row between them (first, last seq): sent in one statement, a
   * run may be marked as one outbox_resync range. `singles` are the rows outside runs, marked row by row.
   */
  readonly runs: readonly (readonly [number, number])[];
  readonly singles: readonly number[];
  /** The rows' payloads, in no particular order, separated by PAYLOAD_SEPARATOR (copy-rows.ts). */
  readonly payloads: Buffer;
}

const SEPARATOR_BYTE = Buffer.from(PAYLOAD_SEPARATOR);

interface ResyncRange {
  first_seq: number;
  last_seq: number;
  synced_at_ms: number;
  marker_epoch: string | null;
  marker_timeline: number;
  marker_lsn: number;
}

/** A row as `rows()` shows it, with its effective marker. */
export interface AuditedRow {
  readonly seq: number;
  readonly stream: string;
  readonly id: string;
  readonly state: string;
  readonly markerEpoch: string | null;
  readonly markerTimeline: number | null;
  readonly markerLsn: Lsn | null;
  readonly error: string | null;
}

/** agent_state keys of the lineage bookkeeping (shared by every process on the buffer). */
export const LineageStateKey = {
  /** Bumped by every merge that adds an epoch. */
  Version: 'lineageVersion',
  /** The lineage version the last complete resend scan started at: a scan is due while it is below Version. */
  ResentVersion: 'lineageResentVersion',
  /** {epoch, rows}: the synced rows the complete resend scans into that epoch re-sent, all processes together. */
  ResentRows: 'lineageResentRows',
  /** The epoch this worker last confirmed in rds_failover.worker_epochs. */
  ConfirmedEpoch: 'confirmedEpoch',
  /** {epoch, rows}: what that confirmation said (a later scan that re-sent more updates it). */
  Confirmed: 'confirmed',
} as const;

/**
 * A synced row's effective marker and synced time: those of the outbox_resync range over it if any (ranges
 * never overlap and are always newer than the row's own columns), else its own. Use as
 * `FROM outbox o ${EFFECTIVE_JOIN}` and read `coalesce(r.col, o.col)`.
 */
const EFFECTIVE_JOIN = `LEFT JOIN outbox_resync r ON o.state = 'synced'
  AND r.first_seq = (SELECT max(first_seq) FROM outbox_resync WHERE first_seq <= o.seq) AND r.last_seq >= o.seq`;

function toRow(r: unknown): OutboxRow {
  const [seq, stream, id, payload] = r as [number, string, string, string];
  return { seq, stream, id, payload };
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * Retries `fn` while SQLite answers SQLITE_BUSY (another process holds the write lock, or a reader meets a
 * WAL reset), waiting a random 0.05 ms up to 0.05 * 2^attempt ms (capped at 5 ms) between tries, for at
 * most `timeoutMs`. SQLite's own busy handler sleeps 1, 2, 5 ... 100 ms, which let one of 8 contending
 * appenders wait seconds (measured p99 3 s); this keeps the worst p99 near 70 ms at a lower total rate.
 * Safe: a statement or transaction that got SQLITE_BUSY did not take effect.
 */
/** SQLITE_FULL (disk full, or max_page_count reached), from either driver (cf. isSqliteBusy in sqlite.ts). */
function isSqliteFull(error: unknown): boolean {
  const e = error as { code?: unknown; errcode?: unknown };
  if (e?.code === 'SQLITE_FULL') return true; // better-sqlite3
  return e?.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number' && (e.errcode & 0xff) === 13; // node:sqlite
}

export function retryWhileBusy<T>(file: string, timeoutMs: number, fn: () => T, onBusy?: () => void): T {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return fn();
    } catch (error) {
      if (!isSqliteBusy(error)) throw error;
      onBusy?.();
      if (Date.now() >= deadline) {
        throw new Error(`buffer ${file} stayed locked by another process for ${timeoutMs} ms (busyTimeoutMs): ${(error as Error).message}`);
      }
      Atomics.wait(sleepCell, 0, 0, 0.05 + Math.random() * Math.min(5, 0.05 * 2 ** attempt));
    }
  }
}

export function lsnToInteger(lsn: Lsn): number {
  return Number(parseLsn(lsn));
}

function ensureSchema(db: SqliteDatabase): void {
  const version = Number(db.pragma('user_version', { simple: true }));
  if (version === SCHEMA_VERSION) return;
  if (version > SCHEMA_VERSION) {
    throw new Error(`buffer schema version ${version} is newer than this agent understands (${SCHEMA_VERSION}): upgrade the agent`);
  }
  db.transaction(() => {
    db.exec(SCHEMA_SQL);
    for (const [table, column, declaration] of ADDED_COLUMNS) {
      const columns = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all();
      if (!columns.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${declaration}`);
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

/**
 * SQL true when a row's marker is in `history` (never NULL: a row with no epoch is outside). Parameters in order.
 */
function historyPredicate(history: readonly HistorySpan[], epoch = 'marker_epoch', lsn = 'marker_lsn'): { sql: string; params: (string | number)[] } {
  if (history.length === 0) return { sql: '0', params: [] };
  const spans = history.map((s) => (s.maxLsn === null ? `${epoch} = ?` : `(${epoch} = ? AND ${lsn} <= ?)`));
  return {
    sql: `(${epoch} IS NOT NULL AND (${spans.join(' OR ')}))`,
    params: history.flatMap((s) => (s.maxLsn === null ? [s.epochId] : [s.epochId, Number(s.maxLsn)])),
  };
}

/** The resend scan's choice of synced rows by their own marker columns (outside resync ranges). */
function resendPredicate(selection: ResendSelection): { sql: string; params: (string | number)[] } {
  const inHistory = historyPredicate(selection.history);
  return { sql: `NOT ${inHistory.sql}`, params: inHistory.params };
}

/** The same choice for the synced rows of a resync range, which all carry the range's marker. */
function isResent(range: ResyncRange, selection: ResendSelection): boolean {
  return !isInHistory({ epochId: range.marker_epoch, lsn: BigInt(range.marker_lsn) }, selection.history);
}
