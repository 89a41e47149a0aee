/**
 * Drain every worker: each re-sends the rows it synced on the fork point's timeline above the fork LSN, plus
 * everything pending, to the new writer (or, with no fork point, everything synced within the window).
 * A failed drain is restarted up to config.drainAttempts times; drains are idempotent, so restarting one
 * (or a resumed run starting it again) is harmless.
 */
import type { DrainRequest, DrainSummary } from '../../../ports/worker-control.js';
import { errorMessage, RunbookStepError } from '../errors.js';
import type { RunbookEnv } from '../env.js';
import type { DrainProgress, RunbookState } from '../state.js';
import { checkTimeout, requirePlan, type ActionFn, type ActionResult } from '../step-types.js';

export const startDrains: ActionFn = async (state, env): Promise<ActionResult> => {
  requirePlan(state);
  if (state.forkPoint === undefined) throw new RunbookStepError('refusing to drain: no fork point decision was recorded');
  if (!state.writer) throw new RunbookStepError('refusing to drain: the writer endpoint was not repointed yet');
  const workers = await env.ports.workers.listWorkers();
  const expected = env.config.expectedWorkers;
  if (expected !== undefined && workers.length < expected) {
    throw new RunbookStepError(
      `found ${workers.length} of ${expected} workers to drain (${workers.map((w) => w.id).join(', ') || 'none'}): the missing ones would never re-send ` +
        `their rows; the writer already points at the new primary — re-run when every worker is registered (it resumes), or drain the rest by hand`,
    );
  }
  const request = drainRequest(state, env);
  const drains: DrainProgress[] = [];
  for (const worker of workers) {
    const previous = state.drains?.find((d) => d.workerId === worker.id);
    if (previous && (previous.status === 'done' || (previous.status === 'pending' && previous.startedBy === state.executionId))) {
      drains.push(previous);
      continue;
    }
    const handle = await env.ports.workers.startDrain(worker.id, request);
    drains.push({ workerId: worker.id, handle, startedBy: state.executionId, attempts: (previous?.attempts ?? 0) + 1, status: 'pending' });
  }
  // Keep workers that finished before but are no longer listed: their drain happened.
  for (const d of state.drains ?? []) if (d.status === 'done' && !drains.some((x) => x.workerId === d.workerId)) drains.push(d);
  const warnings = workers.length === 0 ? ['no workers found to drain: check the worker tag / local worker list; rows synced above the fork point are NOT re-sent'] : [];
  return {
    state: { ...state, drains },
    done: true,
    warnings,
    figures: { workers: workers.length, forkLsn: state.forkPoint?.lsn ?? null, windowSeconds: 'windowSeconds' in request ? (request.windowSeconds ?? null) : null },
  };
};

export const drainStatus: ActionFn = async (state, env): Promise<ActionResult> => {
  const drains = [...(state.drains ?? [])];
  let changed = false;
  for (let i = 0; i < drains.length; i++) {
    const d = drains[i]!;
    if (d.status !== 'pending') continue;
    // A handle the worker control no longer knows (its runner restarted) counts as a failed attempt: restart it.
    const status = await env.ports.workers.drainStatus(d.workerId, d.handle).catch((error: unknown) => ({ state: 'failed' as const, error: errorMessage(error) }));
    if (status.state === 'pending') continue;
    changed = true;
    if (status.state === 'done') {
      drains[i] = { ...d, status: 'done', summary: status.summary };
    } else if (d.attempts < env.config.drainAttempts) {
      const handle = await restart(d, state, env);
      drains[i] = { ...d, handle, attempts: d.attempts + 1, startedBy: state.executionId, error: status.error };
    } else {
      drains[i] = { ...d, status: 'failed', error: status.error };
    }
  }
  const next: RunbookState = { ...state, drains };
  const failed = drains.filter((d) => d.status === 'failed');
  if (failed.length > 0) {
    throw new RunbookStepError(
      `drain failed on ${failed.map((d) => `${d.workerId} after ${d.attempts} attempts (${d.error})`).join(', ')}; ` +
        `the other workers are drained; re-run the runbook (it resumes) or drain those workers by hand with the fork point`,
    );
  }
  const pending = drains.filter((d) => d.status === 'pending');
  if (pending.length > 0) {
    checkTimeout(state, env, 'drain', env.config.timeoutMs.drain, `the drain on ${pending.map((d) => d.workerId).join(', ')}`);
    return { state: next, done: false, persist: changed, figures: { pending: pending.length } };
  }
  return { state: next, done: true, figures: drainTotals(drains) };
};

export function drainTotals(drains: readonly DrainProgress[]) {
  const sum = (k: keyof DrainSummary) => drains.reduce((n, d) => n + (d.summary?.[k] ?? 0), 0);
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

/**
 * With no fork point the agent re-sends what it synced within a window ending now; the window must reach back
 * drainWindowSeconds before the failure began, not before now (confirmation, catch-up and an RDS promotion can
 * take many minutes), so the time since the failure is added.
 */
function drainRequest(state: RunbookState, env: RunbookEnv): DrainRequest {
  if (state.forkPoint) return { forkPoint: state.forkPoint };
  const failureAt = Date.parse(state.confirm?.unreachableSince ?? state.fence?.at ?? state.startedAt);
  const sinceFailureSeconds = Math.max(0, Math.ceil((env.ports.clock.now() - failureAt) / 1000));
  return { windowSeconds: env.config.drainWindowSeconds + sinceFailureSeconds };
}

async function restart(d: DrainProgress, state: RunbookState, env: RunbookEnv): Promise<string> {
  try {
    return await env.ports.workers.startDrain(d.workerId, drainRequest(state, env));
  } catch (error) {
    throw new RunbookStepError(`drain on ${d.workerId} failed and could not be restarted: ${errorMessage(error)}`);
  }
}
