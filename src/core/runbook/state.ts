/**
 * The runbook's execution state: plain JSON that flows through Step Functions from one Lambda task to the
 * next, is saved to the journal after every step, and is what the local runner threads through the steps.
 */
import type { Lsn } from '../lsn.js';
import type { Epoch } from '../lineage.js';
import type { FenceResult, ForkPoint, Topology } from '../../ports/cluster-control.js';
import type { NodeProbe } from '../../ports/database-probe.js';
import type { DrainSummary } from '../../ports/worker-control.js';
import type { CandidateAssessment, PlanRefusal, RunbookPlan } from './plan-types.js';
import { RunbookInputError } from './errors.js';

export type RunbookMode = 'failover' | 'switchover';

/** Why an execution started by itself: an RDS failure event for the primary (see the Runbook construct). */
export interface RunbookTrigger {
  readonly source: 'rds-event';
  /** DB instance the event is about. */
  readonly sourceId: string;
  readonly eventId?: string;
  readonly message?: string;
}

/** What an operator (or the EventBridge rule) starts the runbook with. */
export interface RunbookInput {
  readonly mode: RunbookMode;
  /** Promote this replica instead of the planner's choice. */
  readonly candidate?: string;
  /** Override the lag guard (only the lag guard). */
  readonly force?: boolean;
  /** Preflight and plan only: change nothing and return the plan. */
  readonly dryRun?: boolean;
  readonly trigger?: RunbookTrigger;
}

/** User-facing steps, in order. Poll loops belong to the step they wait for. */
export const STEP_NAMES = [
  'confirm',
  'preflight',
  'plan',
  'fence',
  'forkPoint',
  'promote',
  'waitWritable',
  'recordEpoch',
  'isolate',
  'repoint',
  'drain',
  'verify',
  'rebuild',
  'notify',
] as const;
export type StepName = (typeof STEP_NAMES)[number];

export const STEP_LABELS: Readonly<Record<StepName, string>> = {
  confirm: 'confirm primary down',
  preflight: 'preflight',
  plan: 'plan',
  fence: 'fence old primary',
  forkPoint: 'record fork point',
  promote: 'promote',
  waitWritable: 'wait until writable',
  recordEpoch: 'record epoch',
  isolate: 'isolate old primary',
  repoint: 'repoint writer',
  drain: 'drain workers',
  verify: 'verify',
  rebuild: 'rebuild replicas',
  notify: 'notify',
};

export interface StepTiming {
  readonly startedAt: string;
  readonly finishedAt?: string;
  /** Poll iterations so far (status checks of a long wait). */
  readonly polls?: number;
}

export interface DrainProgress {
  readonly workerId: string;
  readonly handle: string;
  /** Execution that started this drain: a resumed run restarts drains whose runner died. */
  readonly startedBy: string;
  readonly attempts: number;
  readonly status: 'pending' | 'done' | 'failed';
  readonly summary?: DrainSummary;
  readonly error?: string;
}

/** The fork point as recorded before promotion: the candidate's replay position, and where it is in the lineage. */
export interface RecordedForkPoint extends ForkPoint {
  /** The candidate's epoch (the new epoch's parent); null when the candidate had no lineage. */
  readonly epochId: string | null;
  /** How much of that epoch the new one keeps (src/core/lineage.ts forkLsnFor); null: none of it. */
  readonly keptUpTo: Lsn | null;
}

/** The cluster's lineage as a run sees it: every epoch read from the nodes and the journal, and each node's epoch. */
export interface RunbookLineage {
  readonly epochs: readonly Epoch[];
  /** Node id -> its newest epoch (null: no lineage schema, or it could not be read). */
  readonly heads: Readonly<Record<string, string | null>>;
}

export interface RebuildProgress {
  readonly replicaId: string;
  readonly nodeId: string;
  /** starting: the rebuild could not be started yet (e.g. the new primary is still taking its first backup); retried. */
  readonly status: 'starting' | 'pending' | 'done' | 'failed';
  readonly detail?: string;
}

export interface ConfirmProgress {
  readonly status: 'pending' | 'confirmed' | 'reachable' | 'not-primary' | 'recovering';
  readonly unreachableSince?: string;
  readonly detail?: string;
}

/** The error Step Functions' Catch puts at $.error (and the local runner mirrors). */
export interface RunbookErrorInfo {
  readonly Error: string;
  readonly Cause: string;
}

export interface RunbookState {
  readonly executionId: string;
  readonly startedAt: string;
  readonly input: RunbookInput;
  readonly clusterId?: string;
  /** This execution holds the failover lock (so its failure path may release it and write the journal). */
  readonly lockHeld?: boolean;
  /** ISO-8601 time the lock was last renewed. */
  readonly lockRenewedAt?: string;
  /** Execution ids this run resumed from the journal, oldest first. */
  readonly resumedFrom?: readonly string[];
  readonly confirm?: ConfirmProgress;
  readonly topology?: Topology;
  readonly probes?: readonly NodeProbe[];
  readonly lineage?: RunbookLineage;
  readonly plan?: RunbookPlan;
  /** Dry run only: why the runbook would refuse, and how it saw each replica. */
  readonly refusal?: PlanRefusal;
  readonly candidates?: readonly CandidateAssessment[];
  readonly fence?: { readonly nodeId: string; readonly result: FenceResult; readonly at: string };
  /** null: the fork point is unknown (the candidate was found already promoted): its epoch keeps nothing of the parent. */
  readonly forkPoint?: RecordedForkPoint | null;
  readonly promotion?: { readonly nodeId: string; readonly requestedAt: string; readonly writableAt?: string };
  /** The epoch this run recorded on the promoted node, before the writer was repointed. */
  readonly epoch?: Epoch;
  readonly isolation?: { readonly nodeId: string; readonly result: FenceResult; readonly at: string };
  readonly writer?: { readonly nodeId: string; readonly repointedAt: string };
  readonly drains?: readonly DrainProgress[];
  readonly verification?: {
    readonly writerAcceptsWrites: boolean;
    readonly writerTimelineId: number | null;
    readonly workers: number;
    readonly resent: number;
    readonly inserted: number;
    readonly remainingPending: number;
    readonly rejected: number;
    /** Workers that confirmed the epoch (rds_failover.worker_epochs) and those that did not within the wait. */
    readonly confirmed?: readonly string[];
    readonly unconfirmed?: readonly string[];
  };
  readonly rebuilds?: readonly RebuildProgress[];
  readonly steps?: Partial<Readonly<Record<StepName, StepTiming>>>;
  readonly warnings?: readonly string[];
  /** Set by every poll action; the state machine's Choice states read $.poll.done and Wait reads $.poll.waitSeconds. */
  readonly poll?: { readonly done: boolean; readonly waitSeconds: number; readonly waitMs: number };
  readonly outcome?: 'succeeded' | 'failed' | 'dry-run' | 'not-confirmed';
  readonly error?: RunbookErrorInfo;
}

/** Timing and limits of the runbook. AWS uses seconds-scale values, the local runner milliseconds. */
export interface RunbookConfig {
  /** Lag guard: a candidate further behind the last known primary position than this is not promoted without force. */
  readonly maxLagOnFailoverBytes: number;
  /** The lock expires this long after the last step renewed it (a crashed runner's lock frees itself). */
  readonly lockTtlSeconds: number;
  /** Auto-trigger: the primary must stay unreachable by probe this long before a failover starts. */
  readonly confirmUnreachableMs: number;
  readonly pollIntervalMs: {
    readonly confirm: number;
    readonly catchUp: number;
    readonly promotion: number;
    readonly drain: number;
    readonly confirmations: number;
    readonly rebuild: number;
  };
  readonly timeoutMs: {
    readonly catchUp: number;
    readonly promotion: number;
    readonly drain: number;
    /** How long verify waits for every worker to confirm the new epoch before it finishes with a warning. */
    readonly confirmations: number;
    readonly rebuild: number;
  };
  /** A failed worker drain is restarted this many times in total before the step fails. */
  readonly drainAttempts: number;
  /**
   * How many workers must be found to drain (the stack's worker count). Fewer is a failure: a worker that is
   * not listed (re-registering, replaced) would never re-send its rows. @default - any number, none is a warning
   */
  readonly expectedWorkers?: number;
  /** Notifications are awaited at most this long (a slow Slack never slows the failover). */
  readonly notifyTimeoutMs: number;
  /** Retry of transient errors (throttling, connection resets), like the state machine's Retry. */
  readonly retry: { readonly intervalMs: number; readonly backoffRate: number; readonly maxAttempts: number };
}

/** Defaults for AWS (RDS promotion and replica creation take minutes). */
export const AWS_RUNBOOK_CONFIG: RunbookConfig = {
  maxLagOnFailoverBytes: 1024 * 1024,
  lockTtlSeconds: 900,
  confirmUnreachableMs: 30_000,
  pollIntervalMs: { confirm: 5_000, catchUp: 2_000, promotion: 10_000, drain: 5_000, confirmations: 5_000, rebuild: 60_000 },
  timeoutMs: { catchUp: 300_000, promotion: 1_800_000, drain: 900_000, confirmations: 300_000, rebuild: 7_200_000 },
  drainAttempts: 3,
  notifyTimeoutMs: 3_000,
  retry: { intervalMs: 2_000, backoffRate: 2, maxAttempts: 5 },
};

/** Defaults for the local cluster: everything takes milliseconds, so poll tightly (the drill's RTO depends on it). */
export const LOCAL_RUNBOOK_CONFIG: RunbookConfig = {
  maxLagOnFailoverBytes: 1024 * 1024,
  lockTtlSeconds: 60,
  confirmUnreachableMs: 1_000,
  pollIntervalMs: { confirm: 100, catchUp: 10, promotion: 10, drain: 10, confirmations: 20, rebuild: 50 },
  timeoutMs: { catchUp: 30_000, promotion: 30_000, drain: 60_000, confirmations: 3_000, rebuild: 60_000 },
  drainAttempts: 3,
  notifyTimeoutMs: 1_000,
  retry: { intervalMs: 50, backoffRate: 2, maxAttempts: 5 },
};

/** Validates a raw execution input; every error names the field and the expected form. */
export function parseRunbookInput(raw: unknown): RunbookInput {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new RunbookInputError(`runbook input must be a JSON object like {"mode": "failover"}, got ${describe(raw)}`);
  }
  const record = raw as Record<string, unknown>;
  const known = new Set(['mode', 'candidate', 'force', 'dryRun', 'trigger']);
  for (const key of Object.keys(record)) {
    if (!known.has(key)) throw new RunbookInputError(`runbook input: unknown field '${key}'; expected only mode, candidate, force, dryRun, trigger`);
  }
  const mode = record.mode ?? 'failover';
  if (mode !== 'failover' && mode !== 'switchover') {
    throw new RunbookInputError(`runbook input: mode must be 'failover' or 'switchover', got ${describe(mode)}`);
  }
  if (record.candidate !== undefined && (typeof record.candidate !== 'string' || !/^[A-Za-z][A-Za-z0-9-]{0,62}$/.test(record.candidate))) {
    throw new RunbookInputError(
      `runbook input: candidate must be a DB instance identifier (a letter, then letters, digits or '-', at most 63), got ${describe(record.candidate)}`,
    );
  }
  for (const flag of ['force', 'dryRun'] as const) {
    if (record[flag] !== undefined && typeof record[flag] !== 'boolean') {
      throw new RunbookInputError(`runbook input: ${flag} must be true or false, got ${describe(record[flag])}`);
    }
  }
  let trigger: RunbookTrigger | undefined;
  if (record.trigger !== undefined) {
    const t = record.trigger as Record<string, unknown>;
    if (t === null || typeof t !== 'object' || t.source !== 'rds-event' || typeof t.sourceId !== 'string' || t.sourceId === '') {
      throw new RunbookInputError(`runbook input: trigger must be {"source": "rds-event", "sourceId": "<db instance id>"}, got ${describe(record.trigger)}`);
    }
    if (mode !== 'failover') throw new RunbookInputError(`runbook input: a trigger only starts mode 'failover', got mode '${mode}'`);
    trigger = {
      source: 'rds-event',
      sourceId: t.sourceId,
      ...(typeof t.eventId === 'string' ? { eventId: t.eventId } : {}),
      ...(typeof t.message === 'string' ? { message: t.message } : {}),
    };
  }
  return {
    mode,
    ...(record.candidate !== undefined ? { candidate: record.candidate as string } : {}),
    ...(record.force !== undefined ? { force: record.force as boolean } : {}),
    ...(record.dryRun !== undefined ? { dryRun: record.dryRun as boolean } : {}),
    ...(trigger ? { trigger } : {}),
  };
}

/** The state a run begins with (Step Functions builds the same from $$.Execution in its first Pass state). */
export function initialState(input: unknown, executionId: string, startedAt: string): RunbookState {
  return { executionId, startedAt, input: input as RunbookInput };
}

/** Validates a state handed to an action (from Step Functions or the journal). */
export function assertRunbookState(raw: unknown): RunbookState {
  if (raw === null || typeof raw !== 'object') throw new RunbookInputError(`runbook state must be an object, got ${describe(raw)}`);
  const s = raw as Record<string, unknown>;
  if (typeof s.executionId !== 'string' || s.executionId === '') throw new RunbookInputError('runbook state: executionId missing: expected the execution name');
  if (typeof s.startedAt !== 'string') throw new RunbookInputError('runbook state: startedAt missing: expected an ISO-8601 time');
  return raw as RunbookState;
}

/** The fork point for people: where the candidate was, and how much of its epoch the new one keeps. */
export function describeForkPoint(forkPoint: ForkPoint | RecordedForkPoint | null | undefined): string {
  if (forkPoint === undefined) return 'not recorded';
  if (forkPoint === null) return 'unknown (the new epoch keeps nothing of its parent: every buffered row is re-sent)';
  const where = `timeline ${forkPoint.timelineId} at ${forkPoint.lsn}`;
  if (!('epochId' in forkPoint) || forkPoint.epochId === null) return where;
  return `${where}, epoch ${forkPoint.epochId.slice(0, 8)} kept ${forkPoint.keptUpTo === null ? 'not at all' : `up to ${forkPoint.keptUpTo}`}`;
}

export type { Lsn };

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  return JSON.stringify(value) ?? String(value);
}
