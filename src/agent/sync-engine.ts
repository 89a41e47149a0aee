import type { AgentConfig } from './config.js';
import { errorMessage, type AgentLog } from './log.js';
import type { Outbox, OutboxRow, SyncMarker } from './outbox.js';
import { RowRejectedError, validateRow } from './row-validation.js';
import { payloadToCopyLine, type ColumnKind } from './copy-rows.js';
import { isRowContentError, PgSink, type StreamBatch } from './sink.js';
import type { WriterSource } from './writer-source.js';

export interface SendTotals {
  /** Rows committed on the writer (inserted or already present). */
  sent: number;
  inserted: number;
  /** Rows refused for their content (validation or a PostgreSQL data/constraint error): now 'rejected'. */
  rejected: number;
  /** Statements committed (one per stream per batch). */
  batches: number;
  marker: SyncMarker | null;
}

export interface SyncPassResult extends SendTotals {
  /** False when the pass stopped early (stop requested) with pending rows left. */
  readonly complete: boolean;
}

/** Where a pump has got to: every row up to `afterSeq` is marked (or rejected). A retry resumes from here. */
export interface PumpProgress {
  afterSeq: number;
}

/** Last sync outcome, kept in the buffer's agent_state so `status` in another process can show it. */
export const StateKey = {
  LastSyncAt: 'lastSyncAt',
  LastSyncMarker: 'lastSyncMarker',
  LastSyncError: 'lastSyncError',
  LastSyncErrorAt: 'lastSyncErrorAt',
  ConsecutiveFailures: 'consecutiveFailures',
  Writer: 'writer',
  LastPrune: 'lastPrune',
} as const;

interface Unit {
  readonly name: string;
  readonly rows: readonly OutboxRow[];
  readonly batch: StreamBatch;
  /** Set on a batch's last unit: marking it completes the batch up to this seq. */
  readonly batchEnd?: number;
  /** The rows as COPY text lines once converted; null when some row cannot be converted exactly. */
  copyLines?: string[] | null;
  /**
   * Drains only: runs of rows with no other row between them (first, last seq), marked as ranges, and the
   * rows marked one by one (pending ones, whose state changes, and rows outside a run). Without them,
   * every row is marked one by one.
   */
  readonly ranges?: readonly (readonly [number, number])[];
  readonly rowByRow?: readonly number[];
}

/** How a stream's payloads become COPY lines on the current writer (copy-rows.ts); null: never COPY. */
interface CopyPlan {
  readonly columns: ReadonlyMap<string, number>;
  readonly kinds: readonly ColumnKind[];
}

interface Committed {
  readonly unit: Unit;
  readonly inserted: number;
  readonly marker: SyncMarker;
}

/**
 * Moves rows from the outbox to the writer. Owns one writer session; not shared between concurrent callers
 * (the daemon, a drain and `sync-once` each use their own engine).
 */
export class SyncEngine {
  private sink: PgSink | null = null;
  private writerDescription: string | null = null;
  private consecutiveFailures = 0;
  /** Failed attempts since this engine started (the SyncErrors metric). */
  syncErrors = 0;
  /** Per stream, for the current session: how to build COPY text, or null when the stream always uses INSERT. */
  private copyPlans = new Map<string, CopyPlan | null>();
  /** Streams whose last COPY met a row already present: INSERT ... ON CONFLICT until one inserts every row again. */
  private readonly copyPaused = new Set<string>();
  /** Runs on every new session before anything is sent on it (a fork drain refuses a writer not past the fork). */
  private sessionCheck: ((sink: PgSink) => Promise<void>) | null = null;

  constructor(
    private readonly outbox: Outbox,
    private readonly config: () => AgentConfig,
    private readonly writer: WriterSource,
    private readonly log: AgentLog,
    private readonly options: { readonly now?: () => number } = {},
  ) {}

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /**
   * Every session opened from now on must pass `check` before a statement goes on it; a failing check closes
   * the session and its error propagates. Set once per engine, before its first session (a drain's engine).
   */
  checkEachSession(check: (sink: PgSink) => Promise<void>): void {
    this.sessionCheck = check;
  }

  /** The writer session, reconnecting when it broke or the writer source changed. */
  async session(): Promise<PgSink> {
    if (this.sink !== null && (this.sink.broken || this.writer.hasChanged())) {
      if (this.writer.hasChanged()) this.log('info', 'writer changed, reconnecting', { previous: this.writerDescription });
      await this.dropSession();
    }
    if (this.sink === null) {
      const target = await this.writer.current();
      const sink = await PgSink.connect(target.clientConfig);
      if (this.sessionCheck !== null) {
        try {
          await this.sessionCheck(sink);
        } catch (error) {
          await sink.close();
          throw error;
        }
      }
      this.sink = sink;
      if (target.description !== this.writerDescription) this.log('info', 'connected to writer', { writer: target.description });
      this.writerDescription = target.description;
    }
    return this.sink;
  }

  async dropSession(): Promise<void> {
    const sink = this.sink;
    this.sink = null;
    this.copyPlans = new Map();
    await sink?.close();
  }

  /** After a failed attempt: forget the session and the resolved writer, and record the error in the buffer. */
  async recordFailure(error: unknown): Promise<number> {
    await this.dropSession();
    this.writer.invalidate();
    // Counted across processes (sync-once runs, daemon restarts) through the buffer's state.
    this.consecutiveFailures = (this.outbox.getState<number>(StateKey.ConsecutiveFailures) ?? 0) + 1;
    this.syncErrors += 1;
    this.outbox.setState({
      [StateKey.LastSyncError]: errorMessage(error),
      [StateKey.LastSyncErrorAt]: new Date(this.now()).toISOString(),
      [StateKey.ConsecutiveFailures]: this.consecutiveFailures,
    });
    return this.consecutiveFailures;
  }

  /** Sends every pending row of the configured streams, batch by batch; stops between batches when asked. */
  async syncPending(shouldStop: () => boolean = () => false): Promise<SyncPassResult> {
    const totals = emptyTotals();
    const { batchSize, streams } = this.config();
    const names = Object.keys(streams);
    const next = (afterSeq: number) => this.outbox.pendingBatch(names, batchSize, afterSeq);
    const progress = { afterSeq: 0 };
    const finished = await this.pump(next, progress, totals, () => true, shouldStop);
    return { ...totals, complete: finished || next(progress.afterSeq).length === 0 };
  }

  /**
   * Sends the batches `next` yields (rows after a seq, in seq order) until it yields none, and marks each
   * statement's rows synced right after its commit. Local work overlaps PostgreSQL's: while a batch's
   * INSERT runs, the previous one is marked and the next one read from SQLite. Only one statement is ever
   * outstanding on the session. Rows refused for their content are narrowed down and set aside (see
   * `narrow`); any other error is thrown with `progress` at the last fully marked batch (committed rows
   * are marked before the error propagates). Returns false when it stopped because `shouldStop` said so.
   */
  async pump(
    next: (afterSeq: number) => OutboxRow[],
    progress: PumpProgress,
    totals: SendTotals,
    validate: (row: OutboxRow) => boolean,
    shouldStop: () => boolean = () => false,
  ): Promise<boolean> {
    let unmarked: Committed | null = null;
    const markUnmarked = () => {
      if (unmarked !== null) this.mark(unmarked, progress, totals);
      unmarked = null;
    };
    const read = (afterSeq: number): { rows: OutboxRow[]; units: Unit[] } => {
      const rows = next(afterSeq);
      const units = rows.length === 0 ? [] : this.units(rows, rows[rows.length - 1]!.seq, totals, validate);
      for (const unit of units) if (!this.copyPaused.has(unit.name)) this.convert(unit);
      return { rows, units };
    };
    try {
      let { rows, units } = read(progress.afterSeq);
      while (rows.length > 0) {
        const batchEnd = rows[rows.length - 1]!.seq;
        if (units.length === 0) progress.afterSeq = Math.max(progress.afterSeq, batchEnd);
        let upcoming: { rows: OutboxRow[]; units: Unit[] } | null = null;
        for (const [index, unit] of units.entries()) {
          const sink = await this.session();
          const inserting = this.send(sink, unit);
          inserting.catch(() => undefined); // awaited below; keeps Node from flagging it meanwhile
          markUnmarked();
          // The next batch is read, validated and converted while PostgreSQL runs this statement.
          if (index === units.length - 1 && !shouldStop()) upcoming = read(batchEnd);
          try {
            const inserted = await inserting;
            unmarked = { unit, inserted, marker: await sink.marker() };
          } catch (error) {
            if (!isRowContentError(error)) throw error;
            await this.narrow(unit.rows, totals, error);
            if (unit.batchEnd !== undefined) progress.afterSeq = Math.max(progress.afterSeq, unit.batchEnd);
          }
        }
        if (shouldStop()) {
          markUnmarked();
          return false;
        }
        ({ rows, units } = upcoming ?? read(batchEnd));
      }
      markUnmarked();
      return true;
    } catch (error) {
      markUnmarked();
      throw error;
    }
  }

  /**
   * Sends one unit as ONE autocommit statement and resolves to the rows inserted. Rows that are not there yet
   * go fastest with COPY (several times faster than INSERT ... ON CONFLICT in PostgreSQL), which fails as a
   * whole, committing nothing, if one of them is present. So: COPY when every row converts exactly
   * (copy-rows.ts); if PostgreSQL refuses the COPY for any reason, the same rows go out with the idempotent
   * INSERT (whose own failure is handled as before), and the stream keeps using INSERT until one inserts
   * every row it sent (rows present again mostly come in runs: a re-drain, a crash before marking).
   */
  private send(sink: PgSink, unit: Unit): Promise<number> {
    // Synchronous up to the statement going on the wire (the caller works locally meanwhile), except for
    // the one catalog query per stream and session.
    if (this.copyPaused.has(unit.name) || this.copyPlans.has(unit.name)) return this.dispatch(sink, unit);
    const stream = unit.batch.stream;
    return sink
      .columnKinds(stream)
      .catch(() => null)
      .then((kinds) => {
        this.copyPlans.set(unit.name, kinds && { columns: new Map(stream.columns.map((c, i) => [c, i])), kinds });
        return this.dispatch(sink, unit);
      });
  }

  private dispatch(sink: PgSink, unit: Unit): Promise<number> {
    const lines = this.copyPaused.has(unit.name) ? null : (this.convert(unit) ?? null);
    if (lines === null) return this.upsert(sink, unit);
    return sink.copy(unit.batch.stream, lines).catch((error: unknown) => {
      if (sink.broken || typeof (error as { code?: unknown }).code !== 'string') throw error;
      this.copyPaused.add(unit.name);
      return this.upsert(sink, unit);
    });
  }

  private async upsert(sink: PgSink, unit: Unit): Promise<number> {
    const inserted = await sink.insert(unit.batch);
    if (inserted === unit.rows.length) this.copyPaused.delete(unit.name);
    return inserted;
  }

  /** Converts the unit's rows to COPY lines once, when the stream's plan is known (null if any row does not convert). */
  private convert(unit: Unit): string[] | null | undefined {
    if (unit.copyLines !== undefined) return unit.copyLines;
    const plan = this.copyPlans.get(unit.name);
    if (plan === undefined) return undefined;
    let lines: string[] | null = null;
    if (plan !== null) {
      lines = [];
      for (const payload of unit.batch.payloads) {
        const line = payloadToCopyLine(payload, plan.columns, plan.kinds);
        if (line === null) {
          lines = null;
          break;
        }
        lines.push(line);
      }
    }
    return (unit.copyLines = lines);
  }

  /**
   * Validates rows (those `validate` picks: rows other languages inserted straight into the file are checked
   * before PostgreSQL sees them) and groups them into one statement per stream, in seq order of first row.
   */
  private units(rows: readonly OutboxRow[], batchEnd: number, totals: SendTotals, validate: (row: OutboxRow) => boolean): Unit[] {
    const streams = this.config().streams;
    const groups = new Map<string, { rows: OutboxRow[]; runs: OutboxRow[][] }>();
    let previous: OutboxRow | undefined;
    for (const row of rows) {
      const before = previous;
      previous = row;
      const stream = streams[row.stream];
      if (stream === undefined) continue; // selections only return configured streams
      if (validate(row)) {
        try {
          validateRow(row.stream, stream, row.payload);
        } catch (error) {
          if (!(error instanceof RowRejectedError)) throw error;
          this.reject(row, error.message, totals);
          continue;
        }
      }
      let group = groups.get(row.stream);
      if (group === undefined) groups.set(row.stream, (group = { rows: [], runs: [] }));
      // A run continues only if the row directly before this one (no row between, see resendBatch) is the
      // last row of this statement: then every row in [first, last] is in it.
      const run = group.runs[group.runs.length - 1];
      if ((row as { adjacent?: boolean }).adjacent === true && run !== undefined && run[run.length - 1] === before) run.push(row);
      else group.runs.push([row]);
      group.rows.push(row);
    }
    const units: Unit[] = [...groups].map(([name, group]) => {
      const unit = { name, rows: group.rows, batch: { stream: streams[name]!, payloads: group.rows.map((r) => r.payload) } };
      if (!group.rows.some((r) => (r as { adjacent?: boolean }).adjacent !== undefined)) return unit;
      const ranges: [number, number][] = [];
      const rowByRow: number[] = [];
      for (const run of group.runs) {
        if (run.length > 1) ranges.push([run[0]!.seq, run[run.length - 1]!.seq]);
        for (const r of run) if (run.length === 1 || (r as { state?: string }).state !== 'synced') rowByRow.push(r.seq);
      }
      return { ...unit, ranges, rowByRow };
    });
    return units.map((unit, i) => (i === units.length - 1 ? { ...unit, batchEnd } : unit));
  }

  private mark(committed: Committed, progress: PumpProgress, totals: SendTotals): void {
    const at = this.now();
    this.consecutiveFailures = 0;
    const { unit } = committed;
    this.outbox.markSynced(
      unit.rowByRow ?? unit.rows.map((r) => r.seq),
      committed.marker,
      at,
      {
        [StateKey.LastSyncAt]: new Date(at).toISOString(),
        [StateKey.LastSyncMarker]: committed.marker,
        [StateKey.Writer]: this.writerDescription,
        [StateKey.ConsecutiveFailures]: 0,
      },
      unit.ranges,
    );
    totals.sent += committed.unit.rows.length;
    totals.inserted += committed.inserted;
    totals.batches += 1;
    totals.marker = committed.marker;
    if (committed.unit.batchEnd !== undefined) progress.afterSeq = Math.max(progress.afterSeq, committed.unit.batchEnd);
  }

  /**
   * A statement failed for its content (SQLSTATE 22/23): split its rows in halves and send each, splitting
   * again where it fails, until the offending row is alone; that row becomes 'rejected' (kept in the
   * buffer, shown in status) so one bad row cannot block its stream.
   */
  private async narrow(rows: readonly OutboxRow[], totals: SendTotals, cause: unknown): Promise<void> {
    if (rows.length === 1) {
      this.reject(rows[0]!, `PostgreSQL refused the row: ${errorMessage(cause)}`, totals);
      return;
    }
    const stream = this.config().streams[rows[0]!.stream]!;
    const middle = rows.length >> 1;
    for (const half of [rows.slice(0, middle), rows.slice(middle)]) {
      const sink = await this.session();
      try {
        const inserted = await sink.insert({ stream, payloads: half.map((r) => r.payload) });
        this.mark({ unit: { name: rows[0]!.stream, rows: half, batch: { stream, payloads: [] } }, inserted, marker: await sink.marker() }, { afterSeq: 0 }, totals);
      } catch (error) {
        if (!isRowContentError(error)) throw error;
        await this.narrow(half, totals, error);
      }
    }
  }

  private reject(row: OutboxRow, reason: string, totals: SendTotals): void {
    this.outbox.markRejected(row.seq, reason);
    totals.rejected += 1;
    this.log('warn', 'row rejected', { stream: row.stream, id: row.id, seq: row.seq, reason });
  }

  async close(): Promise<void> {
    await this.dropSession();
  }
}

export function emptyTotals(): SendTotals {
  return { sent: 0, inserted: 0, rejected: 0, batches: 0, marker: null };
}
