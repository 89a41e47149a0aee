/** confirm (auto-trigger only), preflight (lock, journal, topology, probes) and plan. */
import type { NodeProbe } from '../../../ports/database-probe.js';
import type { RunbookJournalEntry } from '../../../ports/runbook-journal.js';
import { epochIdFor, headOf, mergeEpochs, type Epoch } from '../../lineage.js';
import { RunbookRefusedError, RunbookStepError } from '../errors.js';
import type { RunbookEnv } from '../env.js';
import { planRunbook } from '../planner.js';
import { parseRunbookInput, type RunbookLineage, type RunbookState, type StepName, type StepTiming } from '../state.js';
import { nowIso, type ActionFn, type ActionResult } from '../step-types.js';

/**
 * Auto-trigger: an RDS failure event is a hint, not proof. Start only when the node the event is about is the
 * current writer and stays unreachable by probe for confirmUnreachableMs; one answer cancels the failover.
 */
export const confirm: ActionFn = async (state, env): Promise<ActionResult> => {
  const input = parseRunbookInput(state.input);
  if (!input.trigger) return { state: { ...state, confirm: { status: 'confirmed', detail: 'started by an operator' } }, done: true };
  const topology = await env.ports.cluster.topology();
  if (topology.writerId !== input.trigger.sourceId) {
    const detail = `event about ${input.trigger.sourceId}, but the writer is ${topology.writerId}`;
    return { state: { ...state, confirm: { status: 'not-primary', detail }, outcome: 'not-confirmed' }, done: true, figures: { writer: topology.writerId }, message: detail };
  }
  const probe = await env.ports.probe.probe(topology.writerId);
  const now = nowIso(env);
  if (probe.reachable) {
    const detail = `${topology.writerId} answered the probe (in recovery: ${probe.inRecovery}); no failover`;
    return { state: { ...state, confirm: { status: 'reachable', detail }, outcome: 'not-confirmed' }, done: true, figures: { writer: topology.writerId }, message: detail };
  }
  const managed = await env.ports.cluster.managedState?.(topology.writerId);
  if (managed?.recovering) {
    const detail = `${topology.writerId} does not answer, but the platform is recovering it (status ${managed.status}); no failover`;
    return { state: { ...state, confirm: { status: 'recovering', detail }, outcome: 'not-confirmed' }, done: true, figures: { writer: topology.writerId, status: managed.status }, message: detail };
  }
  const since = state.confirm?.unreachableSince ?? now;
  const downMs = env.ports.clock.now() - Date.parse(since);
  if (downMs >= env.config.confirmUnreachableMs) {
    return {
      state: { ...state, confirm: { status: 'confirmed', unreachableSince: since, detail: probe.error } },
      done: true,
      figures: { writer: topology.writerId, unreachableMs: downMs, event: input.trigger.eventId ?? null },
    };
  }
  return { state: { ...state, confirm: { status: 'pending', unreachableSince: since, detail: probe.error } }, done: false, figures: { unreachableMs: downMs } };
};

export const preflight: ActionFn = async (state, env): Promise<ActionResult> => {
  const input = parseRunbookInput(state.input);
  const { ports, clusterId } = env;
  let next: RunbookState = { ...state, input, clusterId };
  const warnings: string[] = [];

  if (!input.dryRun) {
    const lock = await ports.lock.acquire(clusterId, state.executionId, env.config.lockTtlSeconds);
    if (!lock.acquired) {
      throw new RunbookRefusedError(
        `another failover is running: execution ${lock.heldBy} holds the lock of ${clusterId} since ${lock.since}; ` +
          `wait for it to end (a runner that died frees the lock after ${env.config.lockTtlSeconds} s)`,
      );
    }
    next = { ...next, lockHeld: true, lockRenewedAt: nowIso(env) };
  }

  try {
    const entry = await ports.journal.load(clusterId);
    const topology = await ports.cluster.topology();
    const probes: NodeProbe[] = await Promise.all(topology.nodes.map((n) => ports.probe.probe(n.id)));
    if (resumable(entry)) {
      const gone = probes.find((p) => p.nodeId === entry.state.plan!.candidateId);
      if (gone && !gone.reachable) {
        // Its candidate died since (killed during the drain, say): resuming would act on a dead node. A new plan
        // starts from the live topology, with everything the journal knows of the lineage.
        warnings.push(
          `not resuming execution ${entry.executionId} (${entry.status}): its candidate ${entry.state.plan!.candidateId} does not answer (${gone.error}); planning a new ${input.mode}`,
        );
      } else {
        next = resume(next, entry, env);
        warnings.push(`resuming execution ${entry.executionId} (last saved ${entry.updatedAt}, status ${entry.status}) with its plan: ${next.plan!.oldPrimaryId} -> ${next.plan!.candidateId}`);
      }
    }
    const lineage = await readLineage(probes, entry, next, env);
    next = { ...next, topology, probes, lineage };
    return {
      state: next,
      done: true,
      warnings,
      figures: {
        writer: topology.writerId,
        nodes: topology.nodes.length,
        reachable: probes.filter((p) => p.reachable).length,
        resumed: next.resumedFrom !== undefined,
        epochs: lineage.epochs.length,
      },
    };
  } catch (error) {
    // The failure path only sees the state from before this step: give the lock back here.
    if (next.lockHeld) await ports.lock.release(clusterId, state.executionId).catch(() => undefined);
    throw error;
  }
};

export const plan: ActionFn = async (state, env): Promise<ActionResult> => {
  if (state.plan) {
    const resumed: RunbookState = state.input.dryRun ? { ...state, outcome: 'dry-run' } : state;
    return { state: resumed, done: true, figures: planFigures(state), message: state.resumedFrom ? 'plan taken from the journal (resumed run)' : undefined };
  }
  if (!state.topology || !state.probes) throw new RunbookStepError('plan: no preflight data in the state: preflight must run first');
  const input = parseRunbookInput(state.input);
  const lockHolder = input.dryRun && env.ports.lock.holder ? await env.ports.lock.holder(env.clusterId) : null;
  const outcome = planRunbook({
    mode: input.mode,
    topology: state.topology,
    probes: state.probes,
    candidate: input.candidate,
    force: input.force,
    lineage: state.lineage,
    // Named now and journaled with the plan: a resumed run records the same epoch, never a second one.
    epochId: epochIdFor(`${env.clusterId}/${state.executionId}`),
    maxLagOnFailoverBytes: env.config.maxLagOnFailoverBytes,
    lockHolder,
    now: nowIso(env),
  });
  if (!outcome.ok) {
    if (input.dryRun) {
      return {
        state: { ...state, refusal: outcome.refusal, candidates: outcome.candidates, outcome: 'dry-run' },
        done: true,
        figures: { refused: outcome.refusal.code },
        message: outcome.refusal.reason,
      };
    }
    throw new RunbookRefusedError(outcome.refusal.reason);
  }
  const next: RunbookState = { ...state, plan: outcome.plan, ...(input.dryRun ? { outcome: 'dry-run' as const } : {}) };
  return { state: next, done: true, figures: planFigures(next), warnings: outcome.plan.risks };
};

function planFigures(state: RunbookState) {
  const p = state.plan!;
  return {
    oldPrimary: p.oldPrimaryId,
    candidate: p.candidateId,
    lagBytes: p.lagBytes,
    forced: p.forced,
    referenceLsn: p.referenceLsn,
  };
}

/**
 * Every epoch the run can know of: each answering node's lineage, and what the journal recorded (the last run's
 * epoch may live only on a primary that is now dead). A node whose lineage cannot be read has no known epoch.
 */
async function readLineage(probes: readonly NodeProbe[], entry: RunbookJournalEntry | null, state: RunbookState, env: RunbookEnv): Promise<RunbookLineage> {
  const previous = entry?.state as RunbookState | null | undefined;
  const journaled = [...(previous?.lineage?.epochs ?? []), ...(previous?.epoch ? [previous.epoch] : []), ...(state.lineage?.epochs ?? [])];
  const heads: Record<string, string | null> = {};
  const lists: Epoch[][] = [journaled];
  for (const probe of probes) {
    if (!probe.reachable) continue;
    const epochs = await env.ports.lineage.read(probe.nodeId).catch(() => null);
    heads[probe.nodeId] = epochs === null || epochs.length === 0 ? null : tryHead(epochs, probe.nodeId);
    if (epochs) lists.push(epochs);
  }
  return { epochs: mergeEpochs(...lists), heads };
}

function tryHead(epochs: readonly Epoch[], nodeId: string): string | null {
  try {
    return headOf(epochs, nodeId).id;
  } catch {
    return null;
  }
}

/** A journaled run that got as far as a plan and did not succeed is resumed, never re-planned. */
function resumable(entry: RunbookJournalEntry | null): entry is RunbookJournalEntry & { state: RunbookState } {
  if (!entry || entry.status === 'succeeded') return false;
  const s = entry.state as RunbookState | null;
  return !!s && typeof s === 'object' && !!s.plan && s.input?.dryRun !== true;
}

function resume(current: RunbookState, entry: RunbookJournalEntry & { state: RunbookState }, env: RunbookEnv): RunbookState {
  const previous = entry.state;
  const plan = previous.plan!;
  const input = current.input;
  if (input.mode !== plan.mode) {
    throw new RunbookRefusedError(
      `a ${plan.mode} of ${env.clusterId} (${plan.oldPrimaryId} -> ${plan.candidateId}) is unfinished (execution ${entry.executionId}, ${entry.status}); ` +
        `start a ${plan.mode} to resume it, or clear the journal after reconciling by hand (docs/runbook.md)`,
    );
  }
  if (input.candidate !== undefined && input.candidate !== plan.candidateId) {
    throw new RunbookRefusedError(
      `an unfinished ${plan.mode} of ${env.clusterId} already chose ${plan.candidateId} (execution ${entry.executionId}); ` +
        `resume it without a candidate, or clear the journal after reconciling by hand (docs/runbook.md)`,
    );
  }
  // Keep the progress (plan, fork point, promotion, drains...) but restart the clocks of unfinished steps.
  const finishedSteps = Object.fromEntries(
    Object.entries(previous.steps ?? {}).filter(([, t]) => (t as StepTiming | undefined)?.finishedAt),
  ) as Partial<Record<StepName, StepTiming>>;
  const chain = [...(previous.resumedFrom ?? []), ...(entry.executionId !== current.executionId ? [entry.executionId] : [])];
  return {
    ...previous,
    executionId: current.executionId,
    startedAt: current.startedAt,
    input: { ...previous.input, dryRun: input.dryRun },
    clusterId: env.clusterId,
    lockHeld: current.lockHeld,
    lockRenewedAt: current.lockRenewedAt,
    resumedFrom: chain,
    steps: finishedSteps,
    poll: undefined,
    error: undefined,
    outcome: undefined,
  };
}

