/**
 * finish: the final report, journal marked succeeded, lock released.
 * failed: the failure path (Step Functions Catch, or the local runner's catch). It says what state the system
 * was left in and how to recover, gives a switchover's primary its writes back if nothing was promoted, keeps
 * the journal (so a re-run resumes the same plan), and releases the lock if this execution held it.
 */
import { errorMessage } from '../errors.js';
import type { RunbookEnv } from '../env.js';
import { STEP_NAMES, describeForkPoint, type RunbookState, type StepName } from '../state.js';
import { nowIso, requirePlan, type ActionFn, type ActionResult } from '../step-types.js';
import { drainTotals } from './drain.js';
import { replicasNotRebuilt } from './rebuild.js';

export const finish: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  const next: RunbookState = { ...state, outcome: 'succeeded' };
  await saveJournal(next, env, 'succeeded');
  await env.ports.lock.release(env.clusterId, state.executionId);
  const totals = drainTotals(state.drains ?? []);
  const rebuilt = (state.rebuilds ?? []).filter((r) => r.status === 'done').map((r) => r.nodeId);
  const notRebuilt = replicasNotRebuilt(state);
  return {
    state: { ...next, lockHeld: false },
    done: true,
    figures: {
      oldPrimary: plan.oldPrimaryId,
      newPrimary: plan.candidateId,
      forkPoint: describeForkPoint(state.forkPoint),
      epoch: state.epoch?.id ?? null,
      unconfirmedWorkers: state.verification?.unconfirmed?.join(', ') || 'none',
      totalMs: env.ports.clock.now() - Date.parse(state.startedAt),
      workersDrained: totals.workers,
      rowsResent: totals.resent,
      rowsInserted: totals.inserted,
      replicasRebuilt: rebuilt.join(', ') || 'none',
      ...(notRebuilt.length > 0 ? { replicasNotRebuilt: notRebuilt.join(', ') } : {}),
      resumed: (state.resumedFrom?.length ?? 0) > 0,
    },
    message: [
      `${plan.oldPrimaryId} -> ${plan.candidateId}.`,
      ...(notRebuilt.length > 0 ? [fewerCandidates(notRebuilt)] : []),
      `Next: reconcile the stack's topology (rds-failover reconcile, docs/runbook.md).`,
    ].join(' '),
  };
};

function fewerCandidates(replicas: readonly string[]): string {
  const n = replicas.length;
  return n === 1
    ? `Replica ${replicas[0]} was not rebuilt: the cluster has one failover candidate fewer until it is rebuilt by hand (docs/runbook.md).`
    : `${n} replicas were not rebuilt (${replicas.join(', ')}): the cluster has ${n} failover candidates fewer until they are rebuilt by hand (docs/runbook.md).`;
}

export const failed: ActionFn = async (state, env): Promise<ActionResult> => {
  const error = state.error ?? { Error: 'Unknown', Cause: 'the runbook failed without an error description' };
  let next: RunbookState = { ...state, error, outcome: 'failed' };
  const notes: string[] = [];

  if (state.lockHeld) {
    // Only touch the journal and the lock while they are still ours (a lost lock means another run took over).
    const lock = await env.ports.lock.acquire(env.clusterId, state.executionId, env.config.lockTtlSeconds);
    if (lock.acquired) {
      const unfenced = await restoreSwitchoverPrimary(state, env);
      if (unfenced) notes.push(unfenced);
      if (unfenced?.startsWith('gave')) next = { ...next, fence: undefined };
      try {
        await saveJournal(next, env, 'failed');
      } catch (e) {
        notes.push(`the journal could not be written (${errorMessage(e)}): a re-run re-plans from the live topology`);
      }
      await env.ports.lock.release(env.clusterId, state.executionId);
    } else {
      notes.push(`the lock now belongs to ${lock.heldBy}: journal and lock left to it`);
    }
    next = { ...next, lockHeld: false };
  }

  return {
    state: next,
    done: true,
    figures: { error: error.Error, failedStep: currentStep(state) ?? 'preflight' },
    message: [`${error.Error}: ${error.Cause}`, recoveryAdvice(next), ...notes].join('\n'),
  };
};

/** The step an execution was in when it failed: the first started and unfinished, else the one after the last finished. */
export function currentStep(state: RunbookState): StepName | undefined {
  const steps = state.steps ?? {};
  const open = STEP_NAMES.find((s) => steps[s]?.startedAt && !steps[s]?.finishedAt);
  if (open) return open;
  const finished = STEP_NAMES.filter((s) => steps[s]?.finishedAt);
  const last = finished[finished.length - 1];
  return last ? STEP_NAMES[STEP_NAMES.indexOf(last) + 1] : undefined;
}

/** What a failure at this point left behind, and what to do (the states docs/runbook.md documents). */
export function recoveryAdvice(state: RunbookState): string {
  const plan = state.plan;
  if (!plan || !state.fence) return 'Nothing was changed: the old primary was not fenced and nothing was promoted.';
  const old = plan.oldPrimaryId;
  const cand = plan.candidateId;
  if (!state.promotion) {
    return (
      `${old} is fenced and nothing was promoted (fork point ${describeForkPoint(state.forkPoint)}). ` +
      `Re-run the ${plan.mode} to resume with ${cand}` +
      (plan.mode === 'switchover' ? `, or unfence ${old} by hand (docs/runbook.md).` : '.')
    );
  }
  if (!state.writer) {
    return (
      `${cand} was promoted (fork point ${describeForkPoint(state.forkPoint)}${state.epoch ? `, epoch ${state.epoch.id}` : ', epoch not recorded yet'}) ` +
      `but the writer endpoint still points at the fenced ${old}: writes wait in the worker buffers. Re-run the ${plan.mode}: it resumes, records the epoch, repoints and drains ` +
      `(if ${cand} has died meanwhile, the re-run plans a new failover instead).`
    );
  }
  if (!state.verification) {
    const pending = (state.drains ?? []).filter((d) => d.status !== 'done').map((d) => d.workerId);
    return (
      `${cand} is the writer (epoch ${state.epoch?.id ?? 'not recorded'}); drains not finished on ${pending.join(', ') || 'any worker'}. Each worker's agent re-sends ` +
      `by itself once it reaches ${cand}. Re-run the ${plan.mode} (it resumes and drains again, which is idempotent) or run ` +
      `\`rds-failover drain${state.epoch ? ` --epoch ${state.epoch.id}` : ''}\`.`
    );
  }
  return `The ${plan.mode} is complete and verified (${cand} is the writer, every worker drained); only replica rebuilding/notification failed: rebuild by hand (docs/runbook.md).`;
}

async function restoreSwitchoverPrimary(state: RunbookState, env: RunbookEnv): Promise<string | undefined> {
  if (state.plan?.mode !== 'switchover' || !state.fence || state.promotion) return undefined;
  const node = state.plan.oldPrimaryId;
  if (!env.ports.cluster.unfence) return `${node} is still read-only: unfence it by hand (docs/runbook.md)`;
  try {
    await env.ports.cluster.unfence(node);
    return `gave ${node} its writes back (the switchover did not promote anything)`;
  } catch (error) {
    return `${node} is still read-only and unfencing failed (${errorMessage(error)}): unfence it by hand (docs/runbook.md)`;
  }
}

async function saveJournal(state: RunbookState, env: RunbookEnv, status: 'in-progress' | 'failed' | 'succeeded'): Promise<void> {
  await env.ports.journal.save({ clusterId: env.clusterId, executionId: state.executionId, status, updatedAt: nowIso(env), state });
}

export { saveJournal };
