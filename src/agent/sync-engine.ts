import type { AgentConfig } from './config.js';
import { errorMessage, type AgentLog } from './log.js';
import type { Outbox, OutboxRow, SyncMarker } from './outbox.js';
import { RowRejectedError, validateRow } from './row-validation.js';
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
  readonly rows: readonly OutboxRow[];
  readonly batch: StreamBatch;
  /** Set on a batch's last unit: marking it completes the batch up to this seq. */
  readonly batchEnd?: number;
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

  /** The writer session, reconnecting when it broke or the writer source changed. */
  async session(): Promise<PgSink> {
    if (this.sink !== null && (this.sink.broken || this.writer.hasChanged())) {
      if (this.writer.hasChanged()) this.log('info', 'writer changed, reconnecting', { previous: this.writerDescription });
      await this.dropSession();
    }
    if (this.sink === null) {
      const target = await this.writer.current();
      this.sink = await PgSink.connect(target.clientConfig);
      if (target.description !== this.writerDescription) this.log('info', 'connected to writer', { writer: target.description });
      this.writerDescription = target.description;
    }
    return this.sink;
  }

  async dropSession(): Promise<void> {
    const sink = this.sink;
    this.sink = null;
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
    try {
      let rows = next(progress.afterSeq);
      while (rows.length > 0) {
        const batchEnd = rows[rows.length - 1]!.seq;
        const units = this.units(rows, batchEnd, totals, validate);
        if (units.length === 0) progress.afterSeq = Math.max(progress.afterSeq, batchEnd);
        let upcoming: OutboxRow[] | null = null;
        for (const [index, unit] of units.entries()) {
          const sink = await this.session();
          const inserting = sink.insert(unit.batch);
          inserting.catch(() => undefined); // awaited below; keeps Node from flagging it meanwhile
          markUnmarked();
          if (index === units.length - 1 && !shouldStop()) upcoming = next(batchEnd);
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
        rows = upcoming ?? next(batchEnd);
      }
      markUnmarked();
      return true;
    } catch (error) {
      markUnmarked();
      throw error;
    }
  }

  /**
   * Validates rows (those `validate` picks: rows other languages inserted straight into the file are checked
   * before PostgreSQL sees them) and groups them into one statement per stream, in seq order of first row.
   */
  private units(rows: readonly OutboxRow[], batchEnd: number, totals: SendTotals, validate: (row: OutboxRow) => boolean): Unit[] {
    const streams = this.config().streams;
    const groups = new Map<string, OutboxRow[]>();
    for (const row of rows) {
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
      if (group === undefined) groups.set(row.stream, (group = []));
      group.push(row);
    }
    const units = [...groups].map(([name, group]) => ({ rows: group, batch: { stream: streams[name]!, payloads: group.map((r) => r.payload) } }));
    return units.map((unit, i) => (i === units.length - 1 ? { ...unit, batchEnd } : unit));
  }

  private mark(committed: Committed, progress: PumpProgress, totals: SendTotals): void {
    const at = this.now();
    this.consecutiveFailures = 0;
    this.outbox.markSynced(
      committed.unit.rows.map((r) => r.seq),
      committed.marker,
      at,
      {
        [StateKey.LastSyncAt]: new Date(at).toISOString(),
        [StateKey.LastSyncMarker]: committed.marker,
        [StateKey.Writer]: this.writerDescription,
        [StateKey.ConsecutiveFailures]: 0,
      },
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
        this.mark({ unit: { rows: half, batch: { stream, payloads: [] } }, inserted, marker: await sink.marker() }, { afterSeq: 0 }, totals);
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
