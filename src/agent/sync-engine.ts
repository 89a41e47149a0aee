import { historyOf, type Epoch } from '../core/lineage.js';
import type { AgentConfig, StreamConfig } from './config.js';
import { errorMessage, type AgentLog } from './log.js';
import { LineageStateKey, type Outbox, type OutboxRow, type ResendBlock, type SyncMarker } from './outbox.js';
import { RowRejectedError, validateRow } from './row-validation.js';
import { copyPlan, PAYLOAD_SEPARATOR, payloadsToCopyData, type CopyPlan } from './copy-rows.js';
import { isRowContentError, PgSink } from './sink.js';
import type { WriterSource } from './writer-source.js';
import { convergeOnWriter, LineageMissingError, StaleWriterError } from './writer-lineage.js';

export interface SendTotals {
  /** Rows committed on the writer (inserted or already present). */
  sent: number;
  inserted: number;
  /** Rows refused for their content (validation or a PostgreSQL data/constraint error): now 'rejected'. */
  rejected: number;
  /** Statements committed (one per stream per batch). */
  batches: number;
  marker: SyncMarker | null;
  /**
   * Rows committed on a writer whose epoch was superseded while the statement ran (the batch raced a fork):
   * not marked, sent again by the next pass.
   */
  outsideHistory: number;
  /** Of `sent`, rows that were synced already and went out again (their marker was outside the history). */
  resentSynced: number;
}

export interface SyncPassResult extends SendTotals {
  /** False when the pass stopped early (stop requested) with pending rows left. */
  readonly complete: boolean;
  /** The resend scan this pass ran first (the buffer had learned a new epoch), if any. */
  readonly resend?: ResendScanResult;
}

/** A scan that re-sent every synced row outside the newest epoch's history, and every pending row, up to `maxSeq`. */
export interface ResendScanResult extends SendTotals {
  readonly complete: boolean;
  readonly epoch: Epoch;
  readonly maxSeq: number;
  /** Rows the scan examined (pending and synced up to maxSeq). */
  readonly examined: number;
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
  /** Sessions refused for their lineage (stale or zombie writer, or none): count and the last reason. */
  WriterRefusals: 'writerRefusals',
  LastWriterRefusal: 'lastWriterRefusal',
  /** The epoch of the last writer session that passed the lineage check. */
  WriterEpoch: 'writerEpoch',
  /** Rows committed on a writer whose epoch was superseded while the statement ran (a zombie): not marked, sent again. */
  SupersededCommits: 'supersededCommits',
} as const;

/** One statement: rows of one stream. */
interface Unit {
  readonly name: string;
  readonly stream: StreamConfig;
  readonly seqs: readonly number[];
  /** The rows with their payloads; a drain's synced rows are read from the buffer only if needed (INSERT path). */
  rows: readonly OutboxRow[] | null;
  /** The payloads separated by PAYLOAD_SEPARATOR, when the buffer gave them so (a drain's synced rows). */
  readonly payloads?: Buffer;
  /** Set on a batch's last unit: marking it completes the batch up to this seq. */
  readonly batchEnd?: number;
  /** The rows as COPY data once converted; null when some row cannot be converted exactly. */
  copyData?: Buffer | null;
  /**
   * A drain's synced rows: runs of rows with no other row between them (first, last seq), marked as ranges,
   * and the rows outside runs, marked one by one. Without them, every row is marked one by one.
   */
  readonly ranges?: readonly (readonly [number, number])[];
  readonly rowByRow?: readonly number[];
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
  /** Sessions this engine refused for their lineage (the WriterRefusals metric). */
  writerRefusals = 0;
  /** Per stream, for the current session: how to build COPY data, or null when the stream always uses INSERT. */
  private copyPlans = new Map<string, CopyPlan | null>();
  /** Streams whose last COPY met a row already present: INSERT ... ON CONFLICT until one inserts every row again. */
  private readonly copyPaused = new Set<string>();
  /** The epoch of the current session's writer (checked against the buffer's newest before every statement). */
  private sessionEpoch: Epoch | null = null;
  /** Runs on every new session, after the lineage check, before anything is sent on it (a drain's epoch). */
  private sessionCheck: ((sink: PgSink, epoch: Epoch) => Promise<void> | void) | null = null;

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
   * Every session opened from now on must pass `check` (after the lineage check) before a statement goes on it;
   * a failing check closes the session and its error propagates. Set once per engine, before its first session.
   */
  checkEachSession(check: (sink: PgSink, epoch: Epoch) => Promise<void> | void): void {
    this.sessionCheck = check;
  }

  /**
   * The writer session, reconnecting when it broke, the writer source changed, or the buffer learned a newer
   * epoch than the session's writer is on (from another process: a drain, a restarted daemon). A new session
   * passes the lineage check (writer-lineage.ts) before anything is sent on it.
   */
  async session(): Promise<PgSink> {
    if (this.sink !== null) {
      const newest = this.outbox.lineageHead();
      const superseded = newest !== undefined && newest.id !== this.sessionEpoch?.id;
      if (this.sink.broken || this.writer.hasChanged() || superseded) {
        if (superseded) this.log('warn', 'the buffer learned a newer epoch than the writer session is on: dropping the session', { writer: this.writerDescription, newest: newest.id });
        else if (this.writer.hasChanged()) this.log('info', 'writer changed, reconnecting', { previous: this.writerDescription });
        await this.dropSession();
      }
    }
    if (this.sink === null) {
      const target = await this.writer.current();
      const sink = await PgSink.connect(target.clientConfig);
      try {
        const epoch = await convergeOnWriter(sink, this.outbox, target.description);
        await this.sessionCheck?.(sink, epoch);
        this.sessionEpoch = epoch;
      } catch (error) {
        await sink.close();
        throw error;
      }
      this.sink = sink;
      if (target.description !== this.writerDescription) this.log('info', 'connected to writer', { writer: target.description, epoch: this.sessionEpoch.id });
      this.writerDescription = target.description;
      this.outbox.setState({ [StateKey.WriterEpoch]: this.sessionEpoch.id });
    }
    return this.sink;
  }

  /** The epoch of the current session's writer (after `session()`). */
  epoch(): Epoch {
    if (this.sessionEpoch === null || this.sink === null) throw new Error('no writer session: call session() first');
    return this.sessionEpoch;
  }

  async dropSession(): Promise<void> {
    const sink = this.sink;
    this.sink = null;
    this.sessionEpoch = null;
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
    const at = new Date(this.now()).toISOString();
    const refused = error instanceof StaleWriterError || error instanceof LineageMissingError;
    if (refused) this.writerRefusals += 1;
    this.outbox.setState({
      [StateKey.LastSyncError]: errorMessage(error),
      [StateKey.LastSyncErrorAt]: at,
      [StateKey.ConsecutiveFailures]: this.consecutiveFailures,
      ...(refused
        ? { [StateKey.WriterRefusals]: (this.outbox.getState<number>(StateKey.WriterRefusals) ?? 0) + 1, [StateKey.LastWriterRefusal]: { at, reason: errorMessage(error) } }
        : {}),
    });
    return this.consecutiveFailures;
  }

  /**
   * One pass of the sync loop: when the buffer learned an epoch since the last complete resend scan, that scan
   * first (rows synced outside the new history go out again, before anything new), then every pending row.
   */
  async syncPass(shouldStop: () => boolean = () => false): Promise<SyncPassResult> {
    await this.session();
    const totals = emptyTotals();
    let resend: ResendScanResult | undefined;
    if (this.resendDue()) {
      resend = await this.resendScan({ pending: false, shouldStop }, totals);
      if (!resend.complete) return { ...totals, complete: false, resend };
    } else {
      await this.confirmIfDue();
    }
    return { ...(await this.syncPending(shouldStop, totals)), ...(resend ? { resend } : {}) };
  }

  /** The buffer learned an epoch no complete resend scan has covered yet. */
  resendDue(): boolean {
    return (this.outbox.getState<number>(LineageStateKey.ResentVersion) ?? 0) < (this.outbox.getState<number>(LineageStateKey.Version) ?? 0);
  }

  /**
   * Re-sends every synced row whose marker is outside the history of the session writer's epoch, and (a drain)
   * every pending row, up to the newest row now (rows appended later are the sync loop's). Safe to run in several
   * processes at once (idempotent sink). A complete scan records the lineage version it started at and confirms
   * the epoch in rds_failover.worker_epochs (when the config names the worker). The sync loop leaves the pending
   * rows to its own pass, in batchSize transactions.
   */
  async resendScan(options: { readonly pending: boolean; readonly shouldStop?: () => boolean }, totals: SendTotals = emptyTotals()): Promise<ResendScanResult> {
    const shouldStop = options.shouldStop ?? (() => false);
    const { streams, drain } = this.config();
    await this.session();
    const epoch = this.epoch();
    const version = this.outbox.getState<number>(LineageStateKey.Version) ?? 0;
    const selection = { history: historyOf(this.outbox.lineage(), epoch.id), pending: options.pending };
    const names = Object.keys(streams);
    const maxSeq = this.outbox.maxSeq();
    const examined = this.outbox.countExamined(maxSeq);
    const racedBefore = totals.outsideHistory;
    const resentBefore = totals.resentSynced;
    const next = (afterSeq: number) => this.outbox.resendBlock(names, selection, afterSeq, maxSeq, drain.batchSize);
    const progress = { afterSeq: 0 };
    const complete = await this.pump(next, progress, totals, shouldStop);
    const result: ResendScanResult = { ...totals, outsideHistory: totals.outsideHistory - racedBefore, complete, epoch, maxSeq, examined };
    if (complete && result.outsideHistory === 0 && this.outbox.lineageHead()?.id === epoch.id) {
      const resent = totals.resentSynced - resentBefore;
      this.outbox.updateState<ResentRows>(LineageStateKey.ResentRows, (c) => ({ epoch: epoch.id, rows: (c?.epoch === epoch.id ? c.rows : 0) + resent }));
      this.outbox.setState({ [LineageStateKey.ResentVersion]: version });
      await this.confirmIfDue();
    }
    return result;
  }

  /**
   * Records in rds_failover.worker_epochs that this worker converged on the session's epoch (every row outside its
   * history re-sent), with how many rows that took; again when a later scan (another process) re-sent more.
   */
  private async confirmIfDue(): Promise<void> {
    const workerId = this.config().workerId;
    const epoch = this.epoch();
    if (workerId === undefined || this.resendDue()) return;
    const resent = this.outbox.getState<ResentRows>(LineageStateKey.ResentRows);
    const rows = resent?.epoch === epoch.id ? resent.rows : 0;
    const confirmed = this.outbox.getState<ResentRows>(LineageStateKey.Confirmed);
    if (confirmed?.epoch === epoch.id && confirmed.rows === rows) return;
    await this.sink!.confirmEpoch(workerId, epoch.id, rows);
    this.outbox.setState({ [LineageStateKey.ConfirmedEpoch]: epoch.id, [LineageStateKey.Confirmed]: { epoch: epoch.id, rows } });
    this.log('info', 'confirmed the epoch', { epoch: epoch.id, workerId, resentRows: rows });
  }

  /** Sends every pending row of the configured streams, batch by batch; stops between batches when asked. */
  async syncPending(shouldStop: () => boolean = () => false, totals: SendTotals = emptyTotals()): Promise<SyncPassResult> {
    const { batchSize, streams } = this.config();
    const names = Object.keys(streams);
    const next = (afterSeq: number): ResendBlock => {
      const pending = this.outbox.pendingBatch(names, batchSize, afterSeq);
      return { end: pending.length === 0 ? afterSeq : pending[pending.length - 1]!.seq, pending, synced: [] };
    };
    const progress = { afterSeq: 0 };
    const finished = await this.pump(next, progress, totals, shouldStop);
    return { ...totals, complete: finished || isDone(next(progress.afterSeq), progress.afterSeq) };
  }

  /**
   * Sends the blocks `next` yields (the rows after a seq; per block, the pending rows' statements first,
   * then each stream's synced rows) until one holds nothing and examines nothing new, and marks each
   * statement's rows synced right after its commit. Local work overlaps PostgreSQL's: while a block's
   * statement runs, the previous one is marked and the next block read from SQLite. Only one statement is
   * ever outstanding on the session. Pending rows are checked first (rows other languages inserted straight
   * into the file); rows refused for their content are narrowed down and set aside (see `narrow`); any other
   * error is thrown with `progress` at the last fully marked block (committed rows are marked before the
   * error propagates). Returns false when it stopped because `shouldStop` said so.
   */
  async pump(next: (afterSeq: number) => ResendBlock, progress: PumpProgress, totals: SendTotals, shouldStop: () => boolean = () => false): Promise<boolean> {
    let unmarked: Committed | null = null;
    const markUnmarked = () => {
      if (unmarked !== null) this.mark(unmarked, progress, totals);
      unmarked = null;
    };
    const read = (afterSeq: number): { block: ResendBlock; units: Unit[]; from: number } => {
      const block = next(afterSeq);
      const units = this.units(block, totals);
      for (const unit of units) if (!this.copyPaused.has(unit.name)) this.convert(unit);
      return { block, units, from: afterSeq };
    };
    try {
      let current = read(progress.afterSeq);
      while (!isDone(current.block, current.from)) {
        const { block, units } = current;
        const batchEnd = block.end;
        if (units.length === 0) progress.afterSeq = Math.max(progress.afterSeq, batchEnd);
        let upcoming: typeof current | null = null;
        for (const [index, unit] of units.entries()) {
          const sink = await this.session();
          const inserting = this.send(sink, unit);
          inserting.catch(() => undefined); // awaited below; keeps Node from flagging it meanwhile
          markUnmarked();
          // The next block is read, checked and converted while PostgreSQL runs this statement.
          if (index === units.length - 1 && !shouldStop()) upcoming = read(batchEnd);
          try {
            const inserted = await inserting;
            unmarked = { unit, inserted, marker: await this.markerOf(sink) };
          } catch (error) {
            if (!isRowContentError(error)) throw error;
            await this.narrow(this.rowsOf(unit), totals, error);
            if (unit.batchEnd !== undefined) progress.afterSeq = Math.max(progress.afterSeq, unit.batchEnd);
          }
        }
        if (shouldStop()) {
          markUnmarked();
          return false;
        }
        current = upcoming ?? read(batchEnd);
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
    return sink
      .columnKinds(unit.stream)
      .catch(() => null)
      .then((kinds) => {
        this.copyPlans.set(unit.name, kinds && copyPlan(unit.stream.columns, kinds));
        return this.dispatch(sink, unit);
      });
  }

  private dispatch(sink: PgSink, unit: Unit): Promise<number> {
    const data = this.copyPaused.has(unit.name) ? null : (this.convert(unit) ?? null);
    if (data === null) return this.upsert(sink, unit);
    return sink.copy(unit.stream, data).then(
      async (copied) => {
        if (copied === unit.seqs.length) return copied;
        // Never mark rows a COPY did not load: the same rows go out by INSERT, which adds whatever is missing.
        this.log('warn', 'COPY loaded a different number of rows than it was given; sending them again by INSERT', { stream: unit.name, rows: unit.seqs.length, copied });
        return copied + (await this.upsert(sink, unit));
      },
      (error: unknown) => {
        if (sink.broken || typeof (error as { code?: unknown }).code !== 'string') throw error;
        this.copyPaused.add(unit.name);
        return this.upsert(sink, unit);
      },
    );
  }

  private async upsert(sink: PgSink, unit: Unit): Promise<number> {
    const rows = this.rowsOf(unit);
    const inserted = await sink.insert({ stream: unit.stream, payloads: rows.map((r) => r.payload) });
    if (inserted === rows.length) this.copyPaused.delete(unit.name);
    return inserted;
  }

  /** The unit's rows with their payloads, read from the buffer the first time a drain's synced rows need them. */
  private rowsOf(unit: Unit): readonly OutboxRow[] {
    return (unit.rows ??= this.outbox.rowsBySeq(unit.seqs));
  }

  /** Converts the unit's rows to COPY data once, when the stream's plan is known (null if any row does not convert). */
  private convert(unit: Unit): Buffer | null | undefined {
    if (unit.copyData !== undefined) return unit.copyData;
    const plan = this.copyPlans.get(unit.name);
    if (plan === undefined) return undefined;
    const payloads = unit.payloads ?? Buffer.from(this.rowsOf(unit).map((r) => r.payload).join(PAYLOAD_SEPARATOR), 'utf8');
    return (unit.copyData = plan === null ? null : payloadsToCopyData(payloads, unit.seqs.length, plan));
  }

  /**
   * One statement per stream and kind of row, in block order: the pending rows, checked first (rows other
   * languages inserted straight into the file are checked before PostgreSQL sees them), then a drain's
   * synced rows (checked when they were first sent).
   */
  private units(block: ResendBlock, totals: SendTotals): Unit[] {
    const streams = this.config().streams;
    const groups = new Map<string, OutboxRow[]>();
    for (const row of block.pending) {
      const stream = streams[row.stream];
      if (stream === undefined) continue; // blocks only hold configured streams
      try {
        validateRow(row.stream, stream, row.payload);
      } catch (error) {
        if (!(error instanceof RowRejectedError)) throw error;
        this.reject(row, error.message, totals);
        continue;
      }
      let rows = groups.get(row.stream);
      if (rows === undefined) groups.set(row.stream, (rows = []));
      rows.push(row);
    }
    const units: Unit[] = [...groups].map(([name, rows]) => ({ name, stream: streams[name]!, seqs: rows.map((r) => r.seq), rows }));
    for (const synced of block.synced) {
      const stream = streams[synced.stream];
      if (stream === undefined) continue; // blocks only hold configured streams
      units.push({ name: synced.stream, stream, seqs: synced.seqs, rows: null, payloads: synced.payloads, ranges: synced.runs, rowByRow: synced.singles });
    }
    return units.map((unit, i) => (i === units.length - 1 ? { ...unit, batchEnd: block.end } : unit));
  }

  /** The sync marker of what the session just committed: its writer's epoch, timeline and insert LSN. */
  private async markerOf(sink: PgSink): Promise<SyncMarker> {
    return { epochId: this.epoch().id, ...(await sink.marker()) };
  }

  private mark(committed: Committed, progress: PumpProgress, totals: SendTotals): void {
    const at = this.now();
    this.consecutiveFailures = 0;
    const { unit } = committed;
    const marked = this.outbox.markSynced(
      unit.rowByRow ?? unit.seqs,
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
    if (committed.unit.batchEnd !== undefined) progress.afterSeq = Math.max(progress.afterSeq, committed.unit.batchEnd);
    if (!marked) {
      totals.outsideHistory += committed.unit.seqs.length;
      this.outbox.updateState<number>(StateKey.SupersededCommits, (n) => (n ?? 0) + committed.unit.seqs.length);
      this.log('warn', 'a batch committed on a writer whose epoch was superseded meanwhile: its rows stay unsynced and go out again', { writer: this.writerDescription, rows: committed.unit.seqs.length, marker: committed.marker });
      return;
    }
    totals.sent += committed.unit.seqs.length;
    if (committed.unit.payloads !== undefined) totals.resentSynced += committed.unit.seqs.length;
    totals.inserted += committed.inserted;
    totals.batches += 1;
    totals.marker = committed.marker;
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
        const unit = { name: rows[0]!.stream, stream, seqs: half.map((r) => r.seq), rows: half };
        this.mark({ unit, inserted, marker: await this.markerOf(sink) }, { afterSeq: 0 }, totals);
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

interface ResentRows {
  readonly epoch: string;
  readonly rows: number;
}

/** Nothing to send and no progress: every row after `from` was examined. */
function isDone(block: ResendBlock, from: number): boolean {
  return block.pending.length === 0 && block.synced.length === 0 && block.end <= from;
}

export function emptyTotals(): SendTotals {
  return { sent: 0, inserted: 0, rejected: 0, batches: 0, marker: null, outsideHistory: 0, resentSynced: 0 };
}
