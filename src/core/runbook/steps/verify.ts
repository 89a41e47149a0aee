/**
 * Verify: the new primary answers out of recovery and accepts writes, and the writer endpoint points at it (else
 * the step fails). Then wait, up to timeoutMs.confirmations, for every worker to confirm the promotion's epoch in
 * rds_failover.worker_epochs (its agent re-sent everything outside the new history). A worker that does not
 * confirm in time (down, unreachable, its drain undeliverable) is reported — notification, metric, alarm — and
 * the failover finishes with a warning: its agent heals it by itself when it reconnects, and confirms then.
 */
import { descendsFrom } from '../../lineage.js';
import { RunbookStepError } from '../errors.js';
import type { RunbookEnv } from '../env.js';
import type { RunbookState } from '../state.js';
import { requirePlan, stepElapsedMs, type ActionFn, type ActionResult } from '../step-types.js';
import { drainTotals } from './drain.js';

export const verify: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  if (!state.epoch) throw new RunbookStepError('verify: the epoch of the promotion was not recorded');
  let next = state;
  if (!state.verification) next = await verifyWriter(state, env);
  const verification = next.verification!;

  const workers = [...new Set((state.drains ?? []).map((d) => d.workerId))].sort();
  const confirmed = await confirmedWorkers(next, env);
  const expected = env.config.expectedWorkers;
  const unconfirmed = workers.filter((w) => !confirmed.has(w));
  const enough = expected === undefined || confirmed.size >= expected;
  const waited = stepElapsedMs(state, env, 'verify');
  const withConfirmations = (state: RunbookState): RunbookState => ({
    ...state,
    verification: { ...verification, confirmed: [...confirmed].sort(), unconfirmed },
  });
  if ((unconfirmed.length > 0 || !enough) && waited <= env.config.timeoutMs.confirmations) {
    return { state: withConfirmations(next), done: false, figures: { confirmed: confirmed.size, waitingFor: unconfirmed.join(', ') || `${expected} workers` } };
  }

  const totals = drainTotals(state.drains ?? []);
  const warnings: string[] = [];
  if (unconfirmed.length > 0 || !enough) {
    const missing = unconfirmed.length > 0 ? unconfirmed.join(', ') : `${Math.max(0, (expected ?? 0) - confirmed.size)} unlisted worker(s)`;
    warnings.push(
      `not confirmed within ${Math.round(env.config.timeoutMs.confirmations / 1000)} s: ${missing}. Their rows are safe in their buffers: each agent ` +
        `refuses every writer not on epoch ${state.epoch.id.slice(0, 8)} and re-sends what it synced outside its history when it reconnects, then confirms ` +
        '(`rds-failover status` shows who has; the WorkerUnconfirmed alarm clears then)',
    );
  }
  if (totals.remainingPending > 0) {
    warnings.push(`${totals.remainingPending} rows were pending on the workers when their drains ended (appended meanwhile); their sync loops send them to ${plan.candidateId}`);
  }
  if (totals.rejected > 0) {
    warnings.push(
      `${totals.rejected} re-sent rows were refused by ${plan.candidateId} for their content (kept as rejected in the workers' buffers, with PostgreSQL's error: rds-failover-agent status); they are not on the new primary`,
    );
  }
  await env.ports.metrics
    ?.unconfirmedWorkers(env.clusterId, state.epoch.id, { confirmed: [...confirmed], unconfirmed })
    .catch((error: unknown) => warnings.push(`the unconfirmed-workers metric was not published: ${(error as Error).message}`));
  return {
    state: withConfirmations(next),
    done: true,
    warnings,
    figures: { writer: plan.candidateId, timeline: verification.writerTimelineId, epoch: state.epoch.id, confirmed: confirmed.size, unconfirmed: unconfirmed.join(', ') || null, ...totals },
  };
};

/** The writer checks, once: they fail the step. */
async function verifyWriter(state: RunbookState, env: RunbookEnv): Promise<RunbookState> {
  const plan = requirePlan(state);
  const problems: string[] = [];
  const probe = await env.ports.probe.probe(plan.candidateId);
  if (!probe.reachable) problems.push(`${plan.candidateId} does not answer (${probe.error})`);
  else {
    if (probe.inRecovery) problems.push(`${plan.candidateId} is still in recovery`);
    if (!probe.acceptsWrites) problems.push(`${plan.candidateId} does not accept writes (read-only)`);
  }
  const topology = await env.ports.cluster.topology();
  if (topology.writerId !== plan.candidateId) problems.push(`the writer endpoint points at ${topology.writerId}, not ${plan.candidateId}`);
  if (problems.length > 0) throw new RunbookStepError(`verification failed: ${problems.join('; ')}`);
  const totals = drainTotals(state.drains ?? []);
  return {
    ...state,
    verification: {
      writerAcceptsWrites: true,
      writerTimelineId: probe.reachable ? probe.timelineId : null,
      workers: totals.workers,
      resent: totals.resent,
      inserted: totals.inserted,
      remainingPending: totals.remainingPending,
      rejected: totals.rejected,
    },
  };
}

/** Workers whose newest confirmation is of this run's epoch or a newer one descending from it. */
async function confirmedWorkers(state: RunbookState, env: RunbookEnv): Promise<Set<string>> {
  const plan = requirePlan(state);
  const epoch = state.epoch!;
  const epochs = state.lineage?.epochs ?? [epoch];
  const confirmations = await env.ports.lineage.confirmations(plan.candidateId);
  return new Set(confirmations.filter((c) => c.epochId === epoch.id || descendsFrom(epochs, c.epochId, epoch.id)).map((c) => c.workerId));
}
