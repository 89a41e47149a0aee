/**
 * Rebuild the other replicas from the new primary (RDS: a new read replica per old one; locally: re-point or
 * re-clone). Only what cannot start *yet* is retried on every poll until the rebuild timeout: throttling, a
 * network error, a 5xx, and what the adapter reports as transient (RDS refuses replicas of an instance still
 * taking its first backup: RunbookTransientError). Anything else — access denied, a parameter RDS refuses, a KMS
 * key it cannot use — fails that replica at once with the platform's message. The failover itself is complete at
 * this point, so a replica that cannot be rebuilt is a warning that says the cluster has fewer failover candidates
 * (and the final report lists it), not a failure of the runbook.
 */
import { classifyError, errorMessage, RunbookTransientError } from '../errors.js';
import type { RunbookEnv } from '../env.js';
import type { RebuildProgress, RunbookState } from '../state.js';
import { requirePlan, stepElapsedMs, type ActionFn, type ActionResult } from '../step-types.js';

export const startRebuilds: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  const rebuilds: RebuildProgress[] = [];
  for (const replicaId of plan.rebuildReplicaIds) {
    const previous = state.rebuilds?.find((r) => r.replicaId === replicaId);
    rebuilds.push(previous?.status === 'done' ? previous : await start(replicaId, state, env));
  }
  return { state: { ...state, rebuilds }, done: true, figures: { replicas: rebuilds.length, started: rebuilds.filter((r) => r.status === 'pending').length } };
};

export const rebuildStatus: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  const timedOut = stepElapsedMs(state, env, 'rebuild') > env.config.timeoutMs.rebuild;
  const limit = `${Math.round(env.config.timeoutMs.rebuild / 1000)} s`;
  const rebuilds: RebuildProgress[] = [];
  for (const r of state.rebuilds ?? []) {
    if (r.status === 'starting') {
      const retried = await start(r.replicaId, state, env);
      rebuilds.push(retried.status === 'starting' && timedOut ? { ...retried, status: 'failed', detail: `could not start within ${limit}: ${retried.detail}` } : retried);
      continue;
    }
    if (r.status !== 'pending') {
      rebuilds.push(r);
      continue;
    }
    let status;
    try {
      status = await env.ports.cluster.rebuildStatus(r.nodeId);
    } catch (error) {
      // A throttled or dropped status call says nothing about the replica: ask again at the next poll.
      status = isRetryable(error) ? { state: 'pending' as const, detail: errorMessage(error) } : { state: 'failed' as const, detail: describeError(error) };
    }
    if (status.state === 'pending' && timedOut) rebuilds.push({ ...r, status: 'failed', detail: `not streaming after ${limit}${status.detail ? ` (${status.detail})` : ''}` });
    else if (status.state === 'pending') rebuilds.push(r);
    else rebuilds.push({ ...r, status: status.state, ...(status.detail ? { detail: status.detail } : {}) });
  }
  const next = { ...state, rebuilds };
  if (rebuilds.some((r) => r.status === 'pending' || r.status === 'starting')) return { state: next, done: false };
  const failed = rebuilds.filter((r) => r.status === 'failed');
  return {
    state: next,
    done: true,
    figures: { rebuilt: rebuilds.length - failed.length, failed: failed.length },
    warnings: failed.map(
      (r) => `replica ${r.replicaId} was not rebuilt from ${plan.candidateId} (${r.detail}): the cluster has one failover candidate fewer until it is rebuilt by hand (docs/runbook.md)`,
    ),
  };
};

/** Replicas the rebuild step gave up on: the failover candidates the cluster lacks until they are rebuilt. */
export function replicasNotRebuilt(state: RunbookState): string[] {
  return (state.rebuilds ?? []).filter((r) => r.status === 'failed').map((r) => r.replicaId);
}

async function start(replicaId: string, state: RunbookState, env: RunbookEnv): Promise<RebuildProgress> {
  const plan = requirePlan(state);
  try {
    const { nodeId } = await env.ports.cluster.rebuildReplica(replicaId, plan.candidateId);
    return { replicaId, nodeId, status: 'pending' };
  } catch (error) {
    if (isRetryable(error)) return { replicaId, nodeId: replicaId, status: 'starting', detail: errorMessage(error) };
    return { replicaId, nodeId: replicaId, status: 'failed', detail: describeError(error) };
  }
}

/** Throttling, network errors, 5xx (classifyError) and what an adapter reports as not possible yet. */
function isRetryable(error: unknown): boolean {
  return classifyError(error) instanceof RunbookTransientError;
}

/** The platform's error name and message as it gave them (e.g. "AccessDenied: User ... is not authorized ..."). */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.name && error.name !== 'Error' ? `${error.name}: ${error.message}` : error.message;
}
