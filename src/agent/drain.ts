import { isLsn, parseLsn } from '../core/lsn.js';
import type { DrainRequest, DrainSummary } from '../ports/worker-control.js';
import { backoffDelayMs } from './backoff.js';
import type { AgentConfig } from './config.js';
import { historyRanges } from './lineage.js';
import { errorMessage, type AgentLog } from './log.js';
import type { Outbox, ResendSelection } from './outbox.js';
import { emptyTotals, type SyncEngine } from './sync-engine.js';

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
 * After a complete fork drain into a newer timeline, the fork is recorded so that the next failover's
 * drain and prune know these rows are in the new history.
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
  const next = (afterSeq: number) => outbox.resendBatch(names, selection, afterSeq, maxSeq, config.drain.batchSize);
  for (;;) {
    try {
      await engine.pump(next, progress, totals, (row) => (row as { state?: string }).state === 'pending');
      break;
    } catch (error) {
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
  if (request.forkPoint !== undefined) {
    const writerTimeline = totals.marker?.timelineId ?? (await (await engine.session()).marker()).timelineId;
    if (writerTimeline > request.forkPoint.timelineId) {
      outbox.recordFork({ timelineId: request.forkPoint.timelineId, forkLsn: parseLsn(request.forkPoint.lsn), nextTimelineId: writerTimeline }, now());
    } else {
      log('warn', 'the writer is not on a newer timeline than the fork point: fork not recorded', {
        writerTimeline,
        forkTimeline: request.forkPoint.timelineId,
      });
    }
  }
  const summary: DrainSummary = {
    examined,
    resent: totals.sent,
    inserted: totals.inserted,
    alreadyPresent: totals.sent - totals.inserted,
    remainingPending: outbox.pendingCount(),
  };
  log('info', 'drain finished', { ...summary, rejected: totals.rejected });
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

function resendSelection(request: DrainRequest, outbox: Outbox, nowMs: number): ResendSelection {
  validateDrainRequest(request);
  if (request.forkPoint !== undefined) {
    const target = { timelineId: request.forkPoint.timelineId, lsn: parseLsn(request.forkPoint.lsn) };
    return { kind: 'outside-history', ranges: historyRanges(target, outbox.recordedForks()) };
  }
  return { kind: 'synced-since', sinceMs: nowMs - request.windowSeconds * 1000 };
}
