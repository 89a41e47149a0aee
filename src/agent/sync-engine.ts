import type { AgentConfig } from './config.js';
import { errorMessage, type AgentLog } from './log.js';
import type { Outbox, OutboxRow, SyncMarker } from './outbox.js';
import { RowRejectedError, validateRow } from './row-validation.js';
import { DEFAULT_INSERT_METHOD, isRowContentError, PgSink, type InsertMethod, type StreamBatch } from './sink.js';
import type { WriterSource } from './writer-source.js';

export interface SendTotals {
  /** Rows committed on the writer (inserted or already present). */
  sent: number;
  inserted: number;
  /** Rows refused for their content (validation or a PostgreSQL data/constraint error): now 'rejected'. */
  rejected: number;
  batches: number;
  marker: SyncMarker | null;
}

export interface SyncPassResult extends SendTotals {
  /** False when the pass stopped early (stop requested) with pending rows left. */
  readonly complete: boolean;
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
    private readonly options: { readonly insertMethod?: InsertMethod; readonly now?: () => number } = {},
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
      this.sink = await PgSink.connect(target.clientConfig, this.options.insertMethod ?? DEFAULT_INSERT_METHOD);
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
    const message = errorMessage(error);
    this.outbox.setState({
      [StateKey.LastSyncError]: message,
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
    let afterSeq = 0;
    for (;;) {
      if (shouldStop()) return { ...totals, complete: this.outbox.pendingBatch(names, 1, afterSeq).length === 0 };
      const rows = this.outbox.pendingBatch(names, batchSize, afterSeq);
      if (rows.length === 0) return { ...totals, complete: true };
      await this.send(rows, totals, { validate: () => true });
      afterSeq = rows[rows.length - 1]!.seq;
    }
  }

  /**
   * Commits `rows` on the writer and marks them synced right after each COMMIT. A content error
   * (SQLSTATE 22/23) is narrowed by splitting the batch until the offending row is alone; that row becomes
   * 'rejected' (kept in the buffer, shown in status) so one bad row cannot block the stream. Any other
   * error is thrown with the uncommitted rows left as they were.
   */
  async send(rows: readonly OutboxRow[], totals: SendTotals, options: { validate: (row: OutboxRow) => boolean }): Promise<void> {
    const streams = this.config().streams;
    const valid: OutboxRow[] = [];
    for (const row of rows) {
      const stream = streams[row.stream];
      // Rows written by other languages straight into the file are checked here, before PostgreSQL sees them.
      if (options.validate(row)) {
        try {
          validateRow(row.stream, stream, row.payload);
        } catch (error) {
          if (!(error instanceof RowRejectedError)) throw error;
          this.reject(row, error.message, totals);
          continue;
        }
      }
      if (stream !== undefined) valid.push(row);
    }
    if (valid.length > 0) await this.commitNarrowing(valid, totals);
  }

  private async commitNarrowing(rows: readonly OutboxRow[], totals: SendTotals): Promise<void> {
    const sink = await this.session();
    try {
      const { inserted, marker } = await sink.commit(groupByStream(rows, this.config().streams));
      const at = this.now();
      this.consecutiveFailures = 0;
      this.outbox.markSynced(
        rows.map((r) => r.seq),
        marker,
        at,
        {
          [StateKey.LastSyncAt]: new Date(at).toISOString(),
          [StateKey.LastSyncMarker]: marker,
          [StateKey.Writer]: this.writerDescription,
          [StateKey.ConsecutiveFailures]: 0,
        },
      );
      totals.sent += rows.length;
      totals.inserted += inserted;
      totals.batches += 1;
      totals.marker = marker;
    } catch (error) {
      if (!isRowContentError(error)) throw error;
      if (rows.length === 1) {
        this.reject(rows[0]!, `PostgreSQL refused the row: ${errorMessage(error)}`, totals);
        return;
      }
      const middle = rows.length >> 1;
      await this.commitNarrowing(rows.slice(0, middle), totals);
      await this.commitNarrowing(rows.slice(middle), totals);
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

function groupByStream(rows: readonly OutboxRow[], streams: AgentConfig['streams']): StreamBatch[] {
  const groups = new Map<string, string[]>();
  for (const row of rows) {
    let payloads = groups.get(row.stream);
    if (payloads === undefined) groups.set(row.stream, (payloads = []));
    payloads.push(row.payload);
  }
  return [...groups].map(([name, payloads]) => ({ stream: streams[name]!, payloads }));
}
