/**
 * Verify: the new primary answers out of recovery and accepts writes, the writer endpoint points at it, and
 * every worker's drain finished. Rows still pending on a worker after its drain were appended during it (the
 * buffers keep acknowledging writes throughout): they are reported, and the workers' sync loops deliver them.
 */
import { RunbookStepError } from '../errors.js';
import { requirePlan, type ActionFn, type ActionResult } from '../step-types.js';
import { drainTotals } from './drain.js';

export const verify: ActionFn = async (state, env): Promise<ActionResult> => {
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
  const notDone = (state.drains ?? []).filter((d) => d.status !== 'done');
  if (notDone.length > 0) problems.push(`drain not finished on ${notDone.map((d) => d.workerId).join(', ')}`);
  if (problems.length > 0) throw new RunbookStepError(`verification failed: ${problems.join('; ')}`);

  const totals = drainTotals(state.drains ?? []);
  const warnings: string[] = [];
  if (totals.remainingPending > 0) {
    warnings.push(`${totals.remainingPending} rows were pending on the workers when their drains ended (appended meanwhile); their sync loops send them to ${plan.candidateId}`);
  }
  if (totals.rejected > 0) {
    warnings.push(
      `${totals.rejected} re-sent rows were refused by ${plan.candidateId} for their content (kept as rejected in the workers' buffers, with PostgreSQL's error: rds-failover-agent status); they are not on the new primary`,
    );
  }
  return {
    state: {
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
    },
    done: true,
    warnings,
    figures: { writer: plan.candidateId, timeline: probe.reachable ? probe.timelineId : null, ...totals },
  };
};
