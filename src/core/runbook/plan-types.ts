import type { Lsn } from '../lsn.js';
import type { ForkPoint } from '../../ports/cluster-control.js';
import type { RunbookMode, StepName } from './state.js';

/** How the planner saw one replica. */
export interface CandidateAssessment {
  readonly nodeId: string;
  readonly priority: number;
  readonly reachable: boolean;
  readonly timelineId: number | null;
  readonly replayLsn: Lsn | null;
  readonly receiveLsn: Lsn | null;
  /** Bytes behind the reference position (null when either is unknown). */
  readonly lagBytes: number | null;
  /** The node's newest epoch (null: unknown). */
  readonly epochId: string | null;
  /** Healthy and allowed: could be promoted if the lag guard (or force) lets it. */
  readonly eligible: boolean;
  readonly withinLagGuard: boolean;
  /** Why it is not eligible, or notes (e.g. replay paused). */
  readonly reasons: readonly string[];
}

export type RefusalCode =
  | 'topology-invalid'
  | 'primary-healthy'
  | 'primary-unavailable'
  | 'second-primary'
  | 'candidate-ineligible'
  | 'no-candidate'
  | 'lag-guard'
  | 'locked'
  | 'resume-conflict';

export interface PlanRefusal {
  readonly code: RefusalCode;
  readonly reason: string;
}

export interface RunbookPlan {
  readonly mode: RunbookMode;
  readonly oldPrimaryId: string;
  readonly candidateId: string;
  /** The last known write position of the old primary the lag is measured against. */
  readonly referenceLsn: Lsn | null;
  /** 'primary' = its pg_current_wal_lsn(); 'replicas' = the highest position any replica received (the primary did not answer). */
  readonly referenceSource: 'primary' | 'replicas' | 'none';
  readonly lagBytes: number | null;
  readonly maxLagBytes: number;
  /** The lag guard was overridden with force. */
  readonly forced: boolean;
  /** The fork point as planned (the candidate's replay position now); the runbook records the real one after fencing. */
  readonly plannedForkPoint: ForkPoint | null;
  /** The other replicas, rebuilt from the new primary at the end. */
  readonly rebuildReplicaIds: readonly string[];
  /** What the operator accepts by running this plan (force, candidate behind another, unknown tail). */
  readonly risks: readonly string[];
  readonly candidates: readonly CandidateAssessment[];
  readonly steps: readonly StepName[];
  readonly plannedAt: string;
  /** The epoch the promotion records (src/core/lineage.ts epochIdFor): journaled with the plan, so a resumed run records the same one. */
  readonly epochId: string;
}

export type PlanOutcome =
  | { readonly ok: true; readonly plan: RunbookPlan }
  | { readonly ok: false; readonly refusal: PlanRefusal; readonly candidates: readonly CandidateAssessment[] };
