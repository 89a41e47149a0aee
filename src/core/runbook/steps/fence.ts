/**
 * fence: before anything is promoted, make sure the old primary can never accept another write.
 * - failover: isolate it (quarantine security group and reboot / locally, kill its processes) and, if it answers,
 *   set it read-only and terminate client sessions. Proceed when it is isolated, read-only, or does not answer at
 *   all: a node is isolated only when it provably cannot accept writes, and promoting over one that merely does not
 *   answer is an availability choice the workers' lineage check makes safe (they refuse every writer not on the
 *   epoch the promotion records, and re-send whatever a zombie still took).
 * - switchover: writes only (read-only + sessions terminated), so the candidate can still stream the last WAL;
 *   the `isolate` step cuts it off once the candidate is promoted.
 * isolate: after promotion, (re)assert isolation of the old primary; an unreachable node that could not be
 * isolated is a warning, a node that answers and still accepts writes stops the runbook.
 */
import type { FenceResult } from '../../../ports/cluster-control.js';
import { RunbookStepError } from '../errors.js';
import { parseRunbookInput } from '../state.js';
import { nowIso, requirePlan, type ActionFn, type ActionResult } from '../step-types.js';

export const fence: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  const mode = parseRunbookInput(state.input).mode;
  if (state.fence && fenceHolds(mode, state.fence.result)) {
    return { state, done: true, figures: fenceFigures(state.fence.result), message: 'already fenced (resumed run)' };
  }
  if (mode === 'failover') {
    // Asked before we touch the node (our own quarantine makes it 'modifying'): a primary the platform is bringing
    // back by itself (Multi-AZ failover, reboot) would return writable next to the promoted replica.
    const managed = await env.ports.cluster.managedState?.(plan.oldPrimaryId);
    if (managed?.recovering) {
      throw new RunbookStepError(
        `${plan.oldPrimaryId} is being recovered by the platform itself (status ${managed.status}): promoting now would leave two primaries ` +
          `when it returns; nothing was fenced or promoted. Wait for it, or stop it by hand and re-run (docs/runbook.md)`,
      );
    }
  }
  const result = await env.ports.cluster.fence(plan.oldPrimaryId, { writesOnly: mode === 'switchover' });
  if (!fenceHolds(mode, result)) {
    const detail = result.detail ? `: ${result.detail}` : '';
    throw new RunbookStepError(
      mode === 'switchover'
        ? `could not stop writes on ${plan.oldPrimaryId} (read-only: ${String(result.readOnly)})${detail}; nothing was promoted`
        : `could not fence ${plan.oldPrimaryId}: it answers and still accepts writes, and isolating it failed${detail}; nothing was promoted`,
    );
  }
  const warnings =
    mode === 'failover' && !result.isolated
      ? [
          `${plan.oldPrimaryId} is not isolated (${result.detail ?? 'no detail'}); it ${result.readOnly === true ? 'was set read-only' : 'does not answer'}. ` +
            'Promoting anyway: the workers refuse every writer not on the epoch this failover records and re-send whatever it may still take, ' +
            'so acknowledged writes stay safe; isolation is retried after promotion',
        ]
      : [];
  return {
    state: { ...state, fence: { nodeId: plan.oldPrimaryId, result, at: nowIso(env) } },
    done: true,
    figures: fenceFigures(result),
    warnings,
  };
};

export const isolate: ActionFn = async (state, env): Promise<ActionResult> => {
  const plan = requirePlan(state);
  const already = state.isolation?.result ?? state.fence?.result;
  if (already?.isolated) {
    return { state, done: true, figures: { node: plan.oldPrimaryId, isolated: true } };
  }
  const result = await env.ports.cluster.fence(plan.oldPrimaryId);
  const next = { ...state, isolation: { nodeId: plan.oldPrimaryId, result, at: nowIso(env) } };
  if (result.isolated) return { state: next, done: true, figures: fenceFigures(result) };
  if (result.readOnly === false) {
    throw new RunbookStepError(
      `${plan.oldPrimaryId} answers, accepts writes and could not be isolated${result.detail ? `: ${result.detail}` : ''}; ` +
        `the writer still points at it: fence it by hand before repointing (docs/runbook.md)`,
    );
  }
  const how = result.readOnly === true ? 'answers read-only' : 'does not answer';
  return {
    state: next,
    done: true,
    figures: fenceFigures(result),
    warnings: [
      `${plan.oldPrimaryId} could not be isolated${result.detail ? ` (${result.detail})` : ''} and ${how}; ` +
        `clients that bypass the writer endpoint could reach it if it comes back: isolate it by hand (docs/runbook.md)`,
    ],
  };
};

function fenceHolds(mode: 'failover' | 'switchover', result: FenceResult): boolean {
  if (mode === 'switchover') return result.readOnly === true;
  return result.isolated || result.readOnly === true || result.readOnly === 'unreachable';
}

function fenceFigures(result: FenceResult) {
  return {
    isolated: result.isolated,
    readOnly: String(result.readOnly),
    sessionsTerminated: result.sessionsTerminated,
    lsn: result.lsn ?? null,
  };
}
