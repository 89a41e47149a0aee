import { isLsn, parseLsn } from '../core/lsn.js';
import type { DrainRequest, DrainSummary } from '../ports/worker-control.js';
import { backoffDelayMs } from './backoff.js';
import type { AgentConfig } from './config.js';
import { historyRanges } from './lineage.js';
import { errorMessage, type AgentLog } from './log.js';
import type { Outbox, ResendSelection } from './outbox.js';
import type { PgSink } from './sink.js';
import { emptyTotals, type SyncEngine } from './sync-engine.js';

/**
 * A fork drain reached a writer that is not on a newer timeline than the fork point: not the promoted
 * primary (the writer endpoint still resolves to the old primary, or to a zombie). Not retried inside the
 * drain: the drain fails (CLI exit 1) and the runbook runs it again.
 */
export class WriterNotPastForkError extends Error {
  constructor(
    readonly writerTimeline: number,
    readonly forkPoint: { readonly timelineId: number; readonly lsn: string },
  ) {
    super(
      `the writer is on timeline ${writerTimeline}, not newer than the fork point's timeline ${forkPoint.timelineId} (fork LSN ${forkPoint.lsn}): ` +
        'it is not the promoted primary (the writer endpoint may still point at the old primary); nothing was re-sent to it, ' +
        'run the drain again once the writer endpoint points at the new primary',
    );
    this.name = 'WriterNotPastForkError';
  }
}

export interface DrainDeps {
  readonly outbox: Outbox;
  readonly engine: SyncEngine;
  readonly config: AgentConfig;
  readonly log: AgentLog;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

/**
 * Re-sends to the current writer every pending row plus the synced rows the request selects:
 * - with a fork point (timeline F, LSN L): every synced row whose marker is not known to be in the new
 *   timeline's history (see lineage.ts): on timeline F above L, on any other timeline, or on an ancestor
 *   timeline this buffer has no recorded fork for;
 * - with a window: every row synced within the last `windowSeconds`.
 * Rows appended after the drain started are left to the sync loop. A failing writer is retried with backoff
 * until `drain.timeoutSeconds`. Safe to repeat and to run beside the sync loop: inserts are idempotent.
 * A fork drain checks every session it opens before sending on it: a writer not on a newer timeline than
 * the fork point fails the drain at once (WriterNotPastForkError) with nothing sent to it or marked.
 * After a complete fork drain, the fork is recorded so that the next failover's drain and prune know these
 * rows are in the new history.
 */
export async function drain(request: DrainRequest, deps: DrainDeps): Promise<DrainSummary> {
  const { outbox, engine, config, log } = deps;
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const selection = resendSelection(request, outbox, now());
  const names = Object.keys(config.streams);
  const maxSeq = outbox.maxSeq();
  const examined = outbox.countExamined(maxSeq);
  const deadline = now() + config.drain.timeoutSeconds * 1000;
  const totals = emptyTotals();
  const progress = { afterSeq: 0 };
  const next = (afterSeq: number) => outbox.resendBlock(names, selection, afterSeq, maxSeq, config.drain.batchSize);
  const forkPoint = request.forkPoint;
  // Every session, including one reopened mid-drain after a network error or a writer change.
  if (forkPoint !== undefined) engine.checkEachSession((sink) => assertPastFork(sink, forkPoint));
  for (;;) {
    try {
      await engine.pump(next, progress, totals);
      break;
    } catch (error) {
      if (error instanceof WriterNotPastForkError) {
        await engine.recordFailure(error);
        throw error;
      }
      // Resumes after the last marked batch: rows committed before the failure carry new markers already
      // and, if still selected, are simply sent again.
      const attempt = await engine.recordFailure(error);
      const wait = Math.min(backoffDelayMs(attempt, config.backoff, deps.random), deadline - now());
      if (wait <= 0) {
        throw new Error(`drain gave up after ${config.drain.timeoutSeconds}s (drain.timeoutSeconds): ${errorMessage(error)}; ${totals.sent} rows re-sent so far, run it again`);
      }
      log('warn', 'drain batch failed, retrying', { error: errorMessage(error), attempt, retryInMs: wait });
      await sleep(wait);
    }
  }
  if (forkPoint !== undefined) {
    // Nothing to re-send still opens (and so checks) a session: the fork is recorded only past a checked writer.
    const writerTimeline = totals.marker?.timelineId ?? (await (await engine.session()).marker()).timelineId;
    if (writerTimeline <= forkPoint.timelineId) throw new WriterNotPastForkError(writerTimeline, forkPoint);
    outbox.recordFork({ timelineId: forkPoint.timelineId, forkLsn: parseLsn(forkPoint.lsn), nextTimelineId: writerTimeline }, now());
  }
  const summary: DrainSummary = {
    examined,
    resent: totals.sent,
    inserted: totals.inserted,
    alreadyPresent: totals.sent - totals.inserted,
    remainingPending: outbox.pendingCount(),
    rejected: totals.rejected,
  };
  log(totals.rejected > 0 ? 'warn' : 'info', 'drain finished', { ...summary });
  return summary;
}

/** Checks a request from the CLI or the controller; errors name the field. */
export function validateDrainRequest(request: DrainRequest): DrainRequest {
  if (request.forkPoint !== undefined) {
    const { timelineId, lsn } = request.forkPoint;
    if (!Number.isInteger(timelineId) || timelineId < 1) throw new Error(`forkPoint.timelineId: expected an integer >= 1, got ${timelineId}`);
    if (!isLsn(lsn)) throw new Error(`forkPoint.lsn: expected an LSN like 0/3000060, got '${lsn}'`);
    return request;
  }
  if (!(typeof request.windowSeconds === 'number' && request.windowSeconds > 0)) {
    throw new Error(`windowSeconds: expected a number of seconds > 0, got ${String(request.windowSeconds)}`);
  }
  return request;
}

async function assertPastFork(sink: PgSink, forkPoint: { readonly timelineId: number; readonly lsn: string }): Promise<void> {
  const { timelineId } = await sink.marker();
  if (timelineId <= forkPoint.timelineId) throw new WriterNotPastForkError(timelineId, forkPoint);
}

function resendSelection(request: DrainRequest, outbox: Outbox, nowMs: number): ResendSelection {
  validateDrainRequest(request);
  if (request.forkPoint !== undefined) {
    const target = { timelineId: request.forkPoint.timelineId, lsn: parseLsn(request.forkPoint.lsn) };
    return { kind: 'outside-history', ranges: historyRanges(target, outbox.recordedForks()) };
  }
  return { kind: 'synced-since', sinceMs: nowMs - request.windowSeconds * 1000 };
}
