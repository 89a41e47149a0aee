/**
 * recordEpoch: once the promoted node accepts writes, and before the writer is repointed at it, record its epoch
 * in its rds_failover.lineage (src/core/lineage.ts): the parent is the candidate's epoch at the fork point, kept
 * up to where it forked; the generation is one more than every epoch this run knows. Workers refuse any writer not
 * on the newest epoch they know, so from here on a zombie old primary cannot take a row that stays counted.
 * The epoch's id was named at plan time: a retried or resumed step records the same one (a no-op).
 */
import { describeEpoch, headOf, mergeEpochs, nextGeneration } from '../../lineage.js';
import { RunbookStepError, RunbookTransientError } from '../errors.js';
import { nowIso, requirePlan, type ActionFn, type ActionResult } from '../step-types.js';

export const recordEpoch: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  if (state.epoch) return { state, done: true, figures: epochFigures(state.epoch), message: 'already recorded (resumed run)' };
  if (!state.promotion?.writableAt) throw new RunbookStepError(`refusing to record the epoch: ${plan.candidateId} is not known to accept writes yet`);
  if (state.forkPoint === undefined) throw new RunbookStepError('refusing to record the epoch: no fork point decision was recorded');
  const probe = await env.ports.probe.probe(plan.candidateId);
  if (!probe.reachable || probe.inRecovery) {
    throw new RunbookTransientError(`${plan.candidateId} ${probe.reachable ? 'is in recovery' : `does not answer (${probe.error})`}: cannot record its epoch yet`);
  }
  const own = (await env.ports.lineage.read(plan.candidateId)) ?? [];
  const known = mergeEpochs(state.lineage?.epochs ?? [], own);
  // No fork point (found promoted already): the parent is what the node carried, and none of it is kept.
  const parentId = state.forkPoint ? state.forkPoint.epochId : own.length > 0 ? headOf(own, plan.candidateId).id : null;
  const epoch = await env.ports.lineage.record(plan.candidateId, {
    id: plan.epochId,
    parentId,
    generation: nextGeneration(known),
    forkLsn: state.forkPoint?.keptUpTo ?? null,
    timelineId: probe.timelineId,
    nodeId: plan.candidateId,
    executionId: state.resumedFrom?.[0] ?? state.executionId,
  });
  return {
    state: {
      ...state,
      epoch,
      lineage: { epochs: mergeEpochs(known, [epoch]), heads: { ...state.lineage?.heads, [plan.candidateId]: epoch.id } },
    },
    done: true,
    figures: epochFigures(epoch),
    message: `${describeEpoch(epoch)} recorded at ${nowIso(env)}`,
  };
};

function epochFigures(epoch: { readonly id: string; readonly generation: number; readonly parentId: string | null; readonly forkLsn: string | null; readonly timelineId: number }) {
  return { epoch: epoch.id, generation: epoch.generation, parent: epoch.parentId, keptUpTo: epoch.forkLsn, timeline: epoch.timelineId };
}
