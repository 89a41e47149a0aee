/**
 * Record the fork point: the candidate's timeline, replay LSN and epoch, read after the fence (so nothing new can
 * arrive from clients) and before promotion. The epoch the promotion records keeps the candidate's epoch up to
 * there (src/core/lineage.ts forkLsnFor), and every worker re-sends what it synced outside that history.
 * Replay may still advance a little before promotion completes: the recorded point is then lower than the
 * real fork, so the workers re-send a few rows too many, which the idempotent sink absorbs.
 *
 * Switchover: first wait until the candidate replayed everything the fenced primary wrote (lag 0).
 * Already recorded (resumed run): kept as is, never re-read after a promotion.
 * Candidate found already promoted without a recorded fork point: the fork point is unknown (null) and the new
 * epoch keeps nothing of its parent (every buffered row is re-sent).
 */
import { forkLsnFor, headOf, mergeEpochs } from '../../lineage.js';
import { compareLsn, lsnDiff, type Lsn } from '../../lsn.js';
import { RunbookStepError } from '../errors.js';
import { parseRunbookInput, type RunbookState } from '../state.js';
import { checkTimeout, requirePlan, type ActionFn, type ActionResult } from '../step-types.js';

export const forkPoint: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  if (state.forkPoint !== undefined) return { state, done: true, figures: forkFigures(state) };
  const mode = parseRunbookInput(state.input).mode;

  let target: Lsn | null = null;
  if (mode === 'switchover') {
    const primary = await env.ports.probe.probe(plan.oldPrimaryId);
    target = primary.reachable && !primary.inRecovery && primary.currentLsn ? primary.currentLsn : (state.fence?.result.lsn ?? null);
    if (!target) {
      throw new RunbookStepError(`switchover: cannot read the WAL position of ${plan.oldPrimaryId} to wait for; nothing was promoted`);
    }
  }

  const candidate = await env.ports.probe.probe(plan.candidateId);
  if (!candidate.reachable) {
    checkTimeout(state, env, 'forkPoint', env.config.timeoutMs.catchUp, `${plan.candidateId} to answer (${candidate.error})`);
    return { state, done: false, figures: { candidate: plan.candidateId, reachable: false } };
  }
  if (!candidate.inRecovery) {
    const next: RunbookState = { ...state, forkPoint: null };
    return {
      state: next,
      done: true,
      figures: forkFigures(next),
      warnings: [
        `${plan.candidateId} is already out of recovery and no fork point was recorded: its epoch keeps nothing of the previous one, so every worker re-sends every row it still holds`,
      ],
    };
  }
  if (!candidate.replayLsn) {
    checkTimeout(state, env, 'forkPoint', env.config.timeoutMs.catchUp, `${plan.candidateId} to report a replay position`);
    return { state, done: false };
  }
  if (target && compareLsn(candidate.replayLsn, target) < 0) {
    checkTimeout(state, env, 'forkPoint', env.config.timeoutMs.catchUp, `${plan.candidateId} to replay up to ${target} (at ${candidate.replayLsn})`);
    return { state, done: false, figures: { candidate: plan.candidateId, replayLsn: candidate.replayLsn, target, lagBytes: lsnDiff(target, candidate.replayLsn) } };
  }
  // Read now, not at preflight: what the candidate replayed since may include an epoch.
  const epochs = await env.ports.lineage.read(plan.candidateId);
  const known = mergeEpochs(state.lineage?.epochs ?? [], epochs ?? []);
  const head = epochs && epochs.length > 0 ? headOf(epochs, plan.candidateId) : null;
  const keptUpTo = head ? forkLsnFor(known, head, candidate.replayLsn, candidate.timelineId) : null;
  const next: RunbookState = {
    ...state,
    // A standby cut off from its upstream may report the timeline of its last restartpoint: its epoch's is a lower bound.
    forkPoint: { timelineId: Math.max(candidate.timelineId, head?.timelineId ?? 0), lsn: candidate.replayLsn, epochId: head?.id ?? null, keptUpTo },
    lineage: { epochs: known, heads: { ...state.lineage?.heads, [plan.candidateId]: head?.id ?? null } },
  };
  return { state: next, done: true, figures: { ...forkFigures(next), ...(target ? { caughtUpTo: target } : {}) } };
};

function forkFigures(state: RunbookState) {
  const fp = state.forkPoint;
  return { forkTimeline: fp ? fp.timelineId : null, forkLsn: fp ? fp.lsn : null, epoch: fp?.epochId?.slice(0, 8) ?? null, keptUpTo: fp ? fp.keptUpTo : null };
}
