/**
 * Rebuild the other replicas from the new primary (RDS: a new read replica per old one; locally: re-point or
 * re-clone). The failover itself is complete at this point, so a replica that cannot be rebuilt is a warning
 * in the final report, not a failure of the runbook.
 */
import { errorMessage } from '../errors.js';
import type { RebuildProgress } from '../state.js';
import { requirePlan, type ActionFn, type ActionResult } from '../step-types.js';

export const startRebuilds: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  const rebuilds: RebuildProgress[] = [];
  for (const replicaId of plan.rebuildReplicaIds) {
    const previous = state.rebuilds?.find((r) => r.replicaId === replicaId);
    if (previous?.status === 'done') {
      rebuilds.push(previous);
      continue;
    }
    try {
      const { nodeId } = await env.ports.cluster.rebuildReplica(replicaId, plan.candidateId);
      rebuilds.push({ replicaId, nodeId, status: 'pending' });
    } catch (error) {
      rebuilds.push({ replicaId, nodeId: previous?.nodeId ?? replicaId, status: 'failed', detail: errorMessage(error) });
    }
  }
  return { state: { ...state, rebuilds }, done: true, figures: { replicas: rebuilds.length } };
};

export const rebuildStatus: ActionFn = async (state, env): Promise<ActionResult> => {
  const startedAt = state.steps?.rebuild?.startedAt;
  const timedOut = startedAt !== undefined && env.ports.clock.now() - Date.parse(startedAt) > env.config.timeoutMs.rebuild;
  const rebuilds: RebuildProgress[] = [];
  for (const r of state.rebuilds ?? []) {
    if (r.status !== 'pending') {
      rebuilds.push(r);
      continue;
    }
    let status;
    try {
      status = await env.ports.cluster.rebuildStatus(r.nodeId);
    } catch (error) {
      status = { state: 'failed' as const, detail: errorMessage(error) };
    }
    if (status.state === 'pending' && timedOut) rebuilds.push({ ...r, status: 'failed', detail: `not streaming after ${env.config.timeoutMs.rebuild / 1000} s` });
    else if (status.state === 'pending') rebuilds.push(r);
    else rebuilds.push({ ...r, status: status.state, ...(status.detail ? { detail: status.detail } : {}) });
  }
  const next = { ...state, rebuilds };
  if (rebuilds.some((r) => r.status === 'pending')) return { state: next, done: false };
  const failed = rebuilds.filter((r) => r.status === 'failed');
  return {
    state: next,
    done: true,
    figures: { rebuilt: rebuilds.length - failed.length, failed: failed.length },
    warnings: failed.map((r) => `replica ${r.replicaId} was not rebuilt from ${requirePlan(state).candidateId} (${r.detail}); rebuild it by hand (docs/runbook.md)`),
  };
};
