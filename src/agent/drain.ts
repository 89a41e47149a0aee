import { describeEpoch, descendsFrom, isEpochId } from '../core/lineage.js';
import type { DrainRequest, DrainSummary } from '../ports/worker-control.js';
import { backoffDelayMs } from './backoff.js';
import type { AgentConfig } from './config.js';
import { errorMessage, type AgentLog } from './log.js';
import type { Outbox } from './outbox.js';
import { emptyTotals, type SyncEngine } from './sync-engine.js';
import { LineageMissingError, StaleWriterError } from './writer-lineage.js';

/**
 * The runbook asked for a drain into the epoch of its promotion, and the writer is on another history: the
 * writer record does not point at the promoted primary (yet). Nothing was sent; the runbook starts the drain again.
 */
export class WriterNotAtEpochError extends Error {
  constructor(writer: string, requested: string) {
    super(
      `the writer (${writer}) is not on epoch ${requested} or a newer one descending from it: it is not the promoted primary ` +
        '(the writer endpoint may still point at the old primary); nothing was re-sent to it, run the drain again once it points at the new primary',
    );
    this.name = 'WriterNotAtEpochError';
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
 * The runbook's fast path after a failover, also run by hand: converge on the writer's lineage, then the resend
 * scan the sync loop would run by itself (every synced row outside the new history, plus every pending row, up
 * to the newest row now), then confirm the epoch in rds_failover.worker_epochs. With `epochId`, the writer must
 * be on that epoch or a descendant (WriterNotAtEpochError otherwise, with nothing sent). A failing writer is
 * retried with backoff until `drain.timeoutSeconds`; a writer refused for its lineage fails the drain at once.
 * Safe to repeat and to run beside the sync loop: inserts are idempotent.
 */
export async function drain(request: DrainRequest, deps: DrainDeps): Promise<DrainSummary> {
  const { outbox, engine, config, log } = deps;
  validateDrainRequest(request);
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const deadline = now() + config.drain.timeoutSeconds * 1000;
  const requested = request.epochId;
  if (requested !== undefined) {
    engine.checkEachSession((_sink, epoch) => {
      if (!descendsFrom(outbox.lineage(), epoch.id, requested)) throw new WriterNotAtEpochError(describeEpoch(epoch), requested);
    });
  }
  // Across attempts: rows a failed attempt committed carry markers in the history now, so a retry skips them.
  const totals = emptyTotals();
  for (;;) {
    try {
      const scan = await engine.resendScan({ pending: true }, totals);
      if (scan.outsideHistory > 0) throw new Error(`the writer's epoch was superseded during the drain (${scan.outsideHistory} rows raced it)`);
      const summary: DrainSummary = {
        epochId: scan.epoch.id,
        examined: scan.examined,
        resent: totals.sent,
        inserted: totals.inserted,
        alreadyPresent: totals.sent - totals.inserted,
        remainingPending: outbox.pendingCount(),
        rejected: totals.rejected,
      };
      log(summary.rejected > 0 ? 'warn' : 'info', 'drain finished', { ...summary, epoch: describeEpoch(scan.epoch) });
      return summary;
    } catch (error) {
      const attempt = await engine.recordFailure(error);
      if (error instanceof WriterNotAtEpochError || error instanceof StaleWriterError || error instanceof LineageMissingError) throw error;
      const wait = Math.min(backoffDelayMs(attempt, config.backoff, deps.random), deadline - now());
      if (wait <= 0) throw new Error(`drain gave up after ${config.drain.timeoutSeconds}s (drain.timeoutSeconds): ${errorMessage(error)}; run it again`);
      log('warn', 'drain failed, retrying', { error: errorMessage(error), attempt, retryInMs: wait });
      await sleep(wait);
    }
  }
}

/** Checks a request from the CLI or the controller; errors name the field. */
export function validateDrainRequest(request: DrainRequest): DrainRequest {
  if (request.epochId !== undefined && !isEpochId(request.epochId)) {
    throw new Error(`epochId: expected the epoch's UUID (e.g. 0b5e...-...), got '${String(request.epochId)}'`);
  }
  return request;
}
