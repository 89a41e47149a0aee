/**
 * Drain every worker: each converges on the promotion's epoch and re-sends what it synced outside the new history
 * plus everything pending (src/agent/drain.ts). The fast path and the report, not the only safety net: every agent
 * checks the lineage on every batch and heals by itself when it reconnects. So a worker whose drain cannot be
 * delivered or keeps failing (down, unreachable) does not fail the failover: it is reported, and verify waits for
 * its own confirmation. A failed drain is restarted up to config.drainAttempts times; drains are idempotent. A drain
 * still unanswered at the stage's limit (AWS: SSM holds a command for an instance it still lists Online although it
 * is gone) is failed and reported the same way: the limit ends the wait, never the failover.
 */
import type { DrainRequest, DrainSummary } from '../../../ports/worker-control.js';
import { classifyError, errorMessage, RunbookErrorName, RunbookStepError } from '../errors.js';
import type { RunbookEnv } from '../env.js';
import type { DrainProgress, RunbookState } from '../state.js';
import { requirePlan, stepElapsedMs, type ActionFn, type ActionResult } from '../step-types.js';

export const startDrains: ActionFn = async (state, env): Promise<ActionResult> => {
  requirePlan(state);
  if (!state.epoch) throw new RunbookStepError('refusing to drain: the epoch of the promotion was not recorded');
  if (!state.writer) throw new RunbookStepError('refusing to drain: the writer endpoint was not repointed yet');
  const workers = await env.ports.workers.listWorkers();
  const expected = env.config.expectedWorkers;
  const warnings: string[] = [];
  if (workers.length === 0) warnings.push('no workers found to drain: check the worker tag / local worker list; each agent re-sends on its own when it reconnects');
  if (expected !== undefined && workers.length < expected) {
    warnings.push(
      `found ${workers.length} of ${expected} workers to drain (${workers.map((w) => w.id).join(', ') || 'none'}): the others re-send on their own when their agent ` +
        'reconnects (the lineage check), and verify waits for their confirmations',
    );
  }
  const request = drainRequest(state);
  const drains: DrainProgress[] = [];
  for (const worker of workers) {
    const previous = state.drains?.find((d) => d.workerId === worker.id);
    if (previous && (previous.status === 'done' || (previous.status === 'pending' && previous.startedBy === state.executionId))) {
      drains.push(previous);
      continue;
    }
    drains.push(await start(worker.id, request, previous, state, env));
  }
  // Keep workers that finished before but are no longer listed: their drain happened.
  for (const d of state.drains ?? []) if (d.status === 'done' && !drains.some((x) => x.workerId === d.workerId)) drains.push(d);
  for (const d of drains) if (d.status === 'failed') warnings.push(unreachableWarning(d));
  return {
    state: { ...state, drains },
    done: true,
    warnings,
    figures: { workers: workers.length, epoch: state.epoch.id, undeliverable: drains.filter((d) => d.status === 'failed').length },
  };
};

export const drainStatus: ActionFn = async (state, env): Promise<ActionResult> => {
  const drains = [...(state.drains ?? [])];
  const warnings: string[] = [];
  let changed = false;
  for (let i = 0; i < drains.length; i++) {
    const d = drains[i]!;
    if (d.status !== 'pending') continue;
    // A handle the worker control no longer knows (its runner restarted) counts as a failed attempt: restart it.
    // A throttled or unanswered status call says nothing about the drain: ask again at the next poll.
    const status = await env.ports.workers.drainStatus(d.workerId, d.handle).catch((error: unknown) =>
      classifyError(error).name === RunbookErrorName.Transient ? ({ state: 'pending' as const }) : ({ state: 'failed' as const, error: errorMessage(error) }),
    );
    if (status.state === 'pending') continue;
    changed = true;
    if (status.state === 'done') {
      drains[i] = { ...d, status: 'done', summary: status.summary };
    } else if (d.attempts < env.config.drainAttempts) {
      drains[i] = await start(d.workerId, drainRequest(state), { ...d, error: status.error }, state, env);
    } else {
      drains[i] = { ...d, status: 'failed', error: status.error };
      warnings.push(unreachableWarning(drains[i]!));
    }
  }
  const pending = drains.filter((d) => d.status === 'pending');
  const limitMs = env.config.timeoutMs.drain;
  if (pending.length > 0 && stepElapsedMs(state, env, 'drain') <= limitMs) {
    return { state: { ...state, drains }, done: false, persist: changed, warnings, figures: { pending: pending.length } };
  }
  // Past the limit: a drain still unanswered is reported like one that could not be delivered.
  const ended = drains.map((d): DrainProgress => {
    if (d.status !== 'pending') return d;
    const failed: DrainProgress = { ...d, status: 'failed', error: `no answer within the drain limit (${Math.round(limitMs / 1000)} s)${d.error ? `; the attempt before: ${d.error}` : ''}` };
    warnings.push(unreachableWarning(failed));
    return failed;
  });
  return { state: { ...state, drains: ended }, done: true, warnings, figures: { ...drainTotals(ended), failed: ended.filter((d) => d.status === 'failed').length } };
};

export function drainTotals(drains: readonly DrainProgress[]) {
  const sum = (k: Exclude<keyof DrainSummary, 'epochId'>) => drains.reduce((n, d) => n + (d.summary?.[k] ?? 0), 0);
  return {
    workers: drains.length,
    examined: sum('examined'),
    resent: sum('resent'),
    inserted: sum('inserted'),
    alreadyPresent: sum('alreadyPresent'),
    remainingPending: sum('remainingPending'),
    rejected: sum('rejected'),
  };
}

function drainRequest(state: RunbookState): DrainRequest {
  return { epochId: state.epoch!.id };
}

/** Starts (or restarts) one drain; a worker the control cannot reach at all is a failed attempt, not a failed step. */
async function start(workerId: string, request: DrainRequest, previous: DrainProgress | undefined, state: RunbookState, env: RunbookEnv): Promise<DrainProgress> {
  const attempts = (previous?.attempts ?? 0) + 1;
  try {
    const handle = await env.ports.workers.startDrain(workerId, request);
    return { workerId, handle, startedBy: state.executionId, attempts, status: 'pending', ...(previous?.error ? { error: previous.error } : {}) };
  } catch (error) {
    // The previous attempt's error stays in the record (e.g. a drain never delivered, then an instance SSM reports offline).
    const before = previous?.error ? `; the attempt before: ${previous.error}` : '';
    return { workerId, handle: '', startedBy: state.executionId, attempts, status: 'failed', error: `could not be started: ${errorMessage(error)}${before}` };
  }
}

function unreachableWarning(d: DrainProgress): string {
  return (
    `drain failed on ${d.workerId} after ${d.attempts} attempts (${d.error}): its agent re-sends on its own when it reconnects ` +
    '(the lineage check); verify waits for its confirmation'
  );
}
