/** Point the writer endpoint (Route 53 record + SSM parameter; locally the writer file) at the new primary. */
import { nowIso, requirePlan, type ActionFn, type ActionResult } from '../step-types.js';
import { RunbookStepError } from '../errors.js';

export const repoint: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  if (!state.promotion?.writableAt) throw new RunbookStepError(`refusing to repoint the writer: ${plan.candidateId} is not known to accept writes yet`);
  // Workers learn the new epoch from the new writer: it must be there before any of them can reach it.
  if (!state.epoch) throw new RunbookStepError(`refusing to repoint the writer: the epoch of ${plan.candidateId} was not recorded yet`);
  await env.ports.cluster.repointWriter(plan.candidateId);
  return {
    state: { ...state, writer: { nodeId: plan.candidateId, repointedAt: nowIso(env) } },
    done: true,
    figures: { writer: plan.candidateId, previous: plan.oldPrimaryId },
  };
};
