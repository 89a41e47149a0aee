/**
 * The failover planner: pure. From the topology and one probe per node it picks the replica to promote, or
 * refuses with the reason. Rules (in this order):
 * - failover: refused while the primary answers and accepts writes (that is a switchover, or no failure at all);
 *   switchover: refused unless the primary answers and is not in recovery.
 * - refused when a node other than the writer accepts writes (a second primary already exists).
 * - a candidate is a replica that answers, is in recovery, is not tagged nofailover, has a replay position,
 *   follows the same timeline as the others, and (switchover) streams from the primary.
 * - among candidates the highest replay LSN wins, then the lower priority, then the node id.
 * - the lag guard: the winner must be within maxLagOnFailoverBytes of the last known primary position, and on
 *   the lost primary's history: a candidate on another epoch (a stale replica still on an older history) is
 *   behind by everything written since their histories parted, whatever the LSNs say;
 *   `force` overrides this guard only, and the plan says what it risks.
 */
import { compareLsn, lsnDiff, maxLsn, type Lsn } from '../lsn.js';
import type { ClusterNode, Topology } from '../../ports/cluster-control.js';
import type { NodeProbe, ReachableProbe } from '../../ports/database-probe.js';
import { describeEpoch, newestEpoch, type Epoch } from '../lineage.js';
import type { CandidateAssessment, PlanOutcome, PlanRefusal, RunbookPlan } from './plan-types.js';
import { STEP_NAMES, type RunbookLineage, type RunbookMode, type StepName } from './state.js';

export interface PlannerInput {
  readonly mode: RunbookMode;
  readonly topology: Topology;
  readonly probes: readonly NodeProbe[];
  readonly candidate?: string;
  readonly force?: boolean;
  /** Each node's epoch and every epoch known (preflight); without it, no lineage check. */
  readonly lineage?: RunbookLineage;
  /** The epoch the promotion will record. */
  readonly epochId: string;
  readonly maxLagOnFailoverBytes: number;
  /** Another execution holding the failover lock (dry runs see it without taking the lock). */
  readonly lockHolder?: { readonly heldBy: string; readonly since: string } | null;
  /** ISO-8601 time of planning. */
  readonly now: string;
}

/** The steps a plan commits to: every step after the plan itself. */
export const RUNBOOK_STEPS: readonly StepName[] = STEP_NAMES.slice(STEP_NAMES.indexOf('plan') + 1);

export function planRunbook(input: PlannerInput): PlanOutcome {
  const { topology, mode } = input;
  const refuse = (code: PlanRefusal['code'], reason: string, candidates: readonly CandidateAssessment[] = []): PlanOutcome => ({
    ok: false,
    refusal: { code, reason },
    candidates,
  });
  if (!Number.isFinite(input.maxLagOnFailoverBytes) || input.maxLagOnFailoverBytes < 0) {
    throw new Error(`maxLagOnFailoverBytes must be a non-negative number of bytes, got ${input.maxLagOnFailoverBytes}`);
  }

  if (input.lockHolder) {
    return refuse('locked', `another failover is running: execution ${input.lockHolder.heldBy} holds the lock since ${input.lockHolder.since}`);
  }
  const oldPrimary = topology.nodes.find((n) => n.id === topology.writerId);
  if (!oldPrimary) {
    return refuse('topology-invalid', `the writer endpoint points at ${topology.writerId}, which is not a node of cluster ${topology.clusterId}`);
  }
  const probes = new Map(input.probes.map((p) => [p.nodeId, p]));
  const primaryProbe = probes.get(oldPrimary.id);
  const primaryUp = primaryProbe?.reachable === true && !primaryProbe.inRecovery ? primaryProbe : undefined;

  if (mode === 'failover' && primaryUp?.acceptsWrites) {
    return refuse(
      'primary-healthy',
      `primary ${oldPrimary.id} answers and accepts writes: an unplanned failover would leave two writable nodes; use a switchover to move the primary`,
    );
  }
  if (mode === 'switchover' && !primaryUp) {
    const why = primaryProbe?.reachable === false ? `does not answer (${primaryProbe.error})` : 'is in recovery';
    return refuse('primary-unavailable', `switchover needs a running primary, but ${oldPrimary.id} ${why}: use a failover`);
  }

  const replicas = topology.nodes.filter((n) => n.id !== oldPrimary.id);
  const secondPrimary = replicas.find((n) => {
    const p = probes.get(n.id);
    return p?.reachable === true && !p.inRecovery;
  });
  if (secondPrimary) {
    return refuse(
      'second-primary',
      `${secondPrimary.id} is not in recovery although the writer is ${oldPrimary.id}: it was promoted outside this runbook; reconcile the topology before failing over`,
    );
  }

  const reachableReplicas = replicas.map((n) => probes.get(n.id)).filter((p): p is ReachableProbe => p?.reachable === true);
  // The writer is always on the newest epoch (the runbook records it before repointing): what the lost primary had.
  const writerEpoch = input.lineage ? newestEpoch(input.lineage.epochs) : undefined;
  const headOfNode = (id: string) => input.lineage?.heads[id] ?? null;
  const onWriterHistory = (id: string) => writerEpoch === undefined || headOfNode(id) === null || headOfNode(id) === writerEpoch.id;
  // Positions compare only within one history: a replica left on an older one says nothing of where the writer was.
  const sameHistory = reachableReplicas.filter((p) => onWriterHistory(p.nodeId));
  const { referenceLsn, referenceSource } = referencePosition(primaryUp, sameHistory.length > 0 ? sameHistory : reachableReplicas);
  const expectedTimeline = primaryUp?.timelineId ?? Math.max(0, ...reachableReplicas.map((p) => p.timelineId));
  const streamingNames = new Set(primaryUp?.replication.filter((r) => r.state === 'streaming').map((r) => r.applicationName) ?? []);
  // RDS replicas connect as 'walreceiver', not under their instance id: when no replication row names a node, the
  // names say nothing and the switchover's wait for lag 0 is the only check (it times out if nothing streams).
  const namesKnown = (primaryUp?.replication ?? []).some((r) => replicas.some((n) => (n.replicationName ?? n.id) === r.applicationName));
  const noneStreaming = primaryUp !== undefined && primaryUp.replication.length === 0;

  const assessments = replicas.map((node) =>
    assess(node, probes.get(node.id), {
      mode,
      referenceLsn,
      expectedTimeline,
      maxLag: input.maxLagOnFailoverBytes,
      streaming: namesKnown ? streamingNames.has(node.replicationName ?? node.id) : !noneStreaming,
      writerEpoch,
      epochId: headOfNode(node.id),
      epochs: input.lineage?.epochs ?? [],
    }),
  );
  const ranked = assessments.filter((a) => a.eligible).sort(byPreference);

  let chosen: CandidateAssessment | undefined;
  if (input.candidate !== undefined) {
    const requested = assessments.find((a) => a.nodeId === input.candidate);
    if (!requested) {
      const known = replicas.map((n) => n.id).join(', ') || 'none';
      return refuse('candidate-ineligible', `candidate ${input.candidate} is not a replica of ${topology.clusterId} (replicas: ${known})`, assessments);
    }
    if (!requested.eligible) {
      return refuse('candidate-ineligible', `candidate ${requested.nodeId} cannot be promoted: ${requested.reasons.join('; ')}`, assessments);
    }
    chosen = requested;
  } else {
    chosen = ranked[0];
    if (!chosen) {
      const why = assessments.map((a) => `${a.nodeId}: ${a.reasons.join('; ')}`).join(' | ') || 'the cluster has no replicas';
      return refuse('no-candidate', `no replica can be promoted (${why})`, assessments);
    }
  }

  const risks: string[] = [];
  if (!chosen.withinLagGuard) {
    const behind = chosen.lagBytes === null ? `is not on the lost primary's history (${chosen.reasons.at(-1)})` : `is ${chosen.lagBytes} bytes behind the last known primary position ${referenceLsn}`;
    if (!input.force) {
      return refuse('lag-guard', `${chosen.nodeId} ${behind} (maxLagOnFailover ${input.maxLagOnFailoverBytes}); re-run with force to promote it anyway`, assessments);
    }
    risks.push(
      `forced past the lag guard: ${chosen.nodeId} ${behind}; transactions the lost primary committed that ${chosen.nodeId} never replayed are lost ` +
        `unless they were written through a worker buffer (the workers re-send those)`,
    );
  }
  const best = ranked[0];
  if (best && best.nodeId !== chosen.nodeId && best.replayLsn && chosen.replayLsn && compareLsn(best.replayLsn, chosen.replayLsn) > 0) {
    risks.push(
      `${chosen.nodeId} was chosen although ${best.nodeId} replayed further (${best.replayLsn} > ${chosen.replayLsn}); the difference is recovered only for buffered writes`,
    );
  }
  if (mode === 'failover' && referenceSource !== 'primary') {
    risks.push(
      `the old primary did not answer: WAL it wrote beyond ${referenceLsn ?? 'the replicas'} is unknown; buffered writes above the fork point are re-sent by the drain`,
    );
  }

  const plan: RunbookPlan = {
    mode,
    oldPrimaryId: oldPrimary.id,
    candidateId: chosen.nodeId,
    referenceLsn,
    referenceSource,
    lagBytes: chosen.lagBytes,
    maxLagBytes: input.maxLagOnFailoverBytes,
    forced: !chosen.withinLagGuard,
    plannedForkPoint: chosen.replayLsn && chosen.timelineId !== null ? { timelineId: chosen.timelineId, lsn: chosen.replayLsn } : null,
    rebuildReplicaIds: replicas.filter((n) => n.id !== chosen.nodeId).map((n) => n.id),
    risks,
    candidates: assessments,
    steps: RUNBOOK_STEPS,
    plannedAt: input.now,
    epochId: input.epochId,
  };
  return { ok: true, plan };
}

function referencePosition(
  primaryUp: ReachableProbe | undefined,
  replicas: readonly ReachableProbe[],
): { referenceLsn: Lsn | null; referenceSource: RunbookPlan['referenceSource'] } {
  if (primaryUp?.currentLsn) return { referenceLsn: primaryUp.currentLsn, referenceSource: 'primary' };
  const known = replicas.flatMap((p) => [p.receiveLsn, p.replayLsn]).filter((l): l is Lsn => l !== null);
  const best = maxLsn(known);
  return best ? { referenceLsn: best, referenceSource: 'replicas' } : { referenceLsn: null, referenceSource: 'none' };
}

interface AssessContext {
  readonly mode: RunbookMode;
  readonly referenceLsn: Lsn | null;
  readonly expectedTimeline: number;
  readonly maxLag: number;
  readonly streaming: boolean;
  /** The epoch the lost primary was on (the newest known), the node's own, and every epoch known. */
  readonly writerEpoch: Epoch | undefined;
  readonly epochId: string | null;
  readonly epochs: readonly Epoch[];
}

function assess(node: ClusterNode, probe: NodeProbe | undefined, ctx: AssessContext): CandidateAssessment {
  const reasons: string[] = [];
  let eligible = true;
  const block = (reason: string) => {
    eligible = false;
    reasons.push(reason);
  };
  if (node.noFailover) block('tagged nofailover');
  if (!probe) block('not probed');
  else if (!probe.reachable) block(`unreachable: ${probe.error}`);
  const up = probe?.reachable ? probe : undefined;
  if (up) {
    if (!up.inRecovery) block('not in recovery');
    if (up.replayLsn === null) block('no replay position');
    if (ctx.expectedTimeline > 0 && up.timelineId !== ctx.expectedTimeline) {
      block(`on timeline ${up.timelineId}, the cluster is on timeline ${ctx.expectedTimeline}`);
    }
    if (ctx.mode === 'switchover' && !ctx.streaming) block('not streaming from the primary (a switchover waits for it to replay everything)');
    if (up.replayPaused) reasons.push('WAL replay is paused (promotion resumes it)');
  }
  const replayLsn = up?.replayLsn ?? null;
  // LSNs compare only within one history: a node on another epoch than the lost primary's is behind by all of it.
  const otherHistory = ctx.writerEpoch !== undefined && ctx.epochId !== null && ctx.epochId !== ctx.writerEpoch.id;
  const lagBytes = !otherHistory && replayLsn && ctx.referenceLsn ? Math.max(0, lsnDiff(ctx.referenceLsn, replayLsn)) : null;
  // Unknown lag (no reference at all) cannot be guarded; it only happens when no node reports a position.
  const withinLagGuard = otherHistory ? false : lagBytes === null ? ctx.referenceLsn === null : lagBytes <= ctx.maxLag;
  if (eligible && otherHistory) {
    const own = ctx.epochs.find((e) => e.id === ctx.epochId);
    reasons.push(`on ${own ? describeEpoch(own) : `epoch ${ctx.epochId!.slice(0, 8)}`}, not on the lost primary's ${describeEpoch(ctx.writerEpoch!)}: behind by everything written since their histories parted`);
  } else if (eligible && !withinLagGuard) reasons.push(`${lagBytes} bytes behind, over the lag guard of ${ctx.maxLag}`);
  return {
    nodeId: node.id,
    priority: node.priority,
    reachable: probe?.reachable === true,
    timelineId: up?.timelineId ?? null,
    replayLsn,
    receiveLsn: up?.receiveLsn ?? null,
    lagBytes,
    epochId: ctx.epochId,
    eligible,
    withinLagGuard,
    reasons,
  };
}

/** Highest replay LSN first, then lower priority, then node id (deterministic). */
function byPreference(a: CandidateAssessment, b: CandidateAssessment): number {
  const byLsn = compareLsn(b.replayLsn!, a.replayLsn!);
  if (byLsn !== 0) return byLsn;
  if (a.priority !== b.priority) return a.priority - b.priority;
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}
