/**
 * promote: only once the fork point is journaled (the state saved after forkPoint), so a crash after this
 * call can never lose it. The port's promote is a no-op on a node already promoted or promoting, which is what
 * makes a re-run after a crash safe (no double promotion, no second candidate: the plan comes from the journal).
 * promotionStatus: poll until the node is available and accepts writes.
 */
import { RunbookStepError } from '../errors.js';
import { checkTimeout, nowIso, requirePlan, type ActionFn, type ActionResult } from '../step-types.js';

export const promote: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  if (state.forkPoint === undefined) {
    throw new RunbookStepError(`refusing to promote ${plan.candidateId}: the fork point was not recorded first`);
  }
  if (!state.fence) throw new RunbookStepError(`refusing to promote ${plan.candidateId}: ${plan.oldPrimaryId} was not fenced first`);
  await env.ports.cluster.promote(plan.candidateId);
  return {
    state: { ...state, promotion: { nodeId: plan.candidateId, requestedAt: state.promotion?.requestedAt ?? nowIso(env) } },
    done: true,
    figures: { node: plan.candidateId },
  };
};

export const promotionStatus: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  if (state.promotion?.writableAt) return { state, done: true, figures: { node: plan.candidateId } };
  const status = await env.ports.cluster.promotionStatus(plan.candidateId);
  if (status.state === 'failed') throw new RunbookStepError(`promotion of ${plan.candidateId} failed: ${status.detail}`);
  if (status.state === 'pending') {
    checkTimeout(state, env, 'waitWritable', env.config.timeoutMs.promotion, `${plan.candidateId} to accept writes${status.detail ? ` (${status.detail})` : ''}`);
    return { state, done: false, figures: { node: plan.candidateId, detail: status.detail ?? null } };
  }
  const writableAt = nowIso(env);
  const requestedAt = state.promotion?.requestedAt ?? writableAt;
  return {
    state: { ...state, promotion: { nodeId: plan.candidateId, requestedAt, writableAt } },
    done: true,
    figures: { node: plan.candidateId, promotionMs: Date.parse(writableAt) - Date.parse(requestedAt) },
  };
};
