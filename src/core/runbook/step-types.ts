import type { EventFigures } from './events.js';
import type { RunbookEnv } from './env.js';
import type { RunbookConfig, RunbookState, StepName } from './state.js';
import type { RunbookPlan } from './plan-types.js';
import { RunbookStepError, RunbookTimeoutError } from './errors.js';

/** What one action did: the next state, whether its step is complete, and the figures its event reports. */
export interface ActionResult {
  readonly state: RunbookState;
  /** The step is complete (a poll action returns false while it must be called again). */
  readonly done: boolean;
  readonly figures?: EventFigures;
  readonly warnings?: readonly string[];
  /** Save the journal even though the poll is not done (something durable changed, e.g. a drain restarted). */
  readonly persist?: boolean;
  readonly message?: string;
}

export type ActionFn = (state: RunbookState, env: RunbookEnv) => Promise<ActionResult>;

export interface ActionSpec {
  readonly step: StepName;
  /** Poll actions are called in a loop; the interval comes from config.pollIntervalMs[poll]. */
  readonly poll?: keyof RunbookConfig['pollIntervalMs'];
  /** Renew the failover lock before running (everything after preflight that changes something). */
  readonly renewsLock: boolean;
  readonly run: ActionFn;
}

export function requirePlan(state: RunbookState): RunbookPlan {
  if (!state.plan) throw new RunbookStepError('runbook state has no plan: the plan step must run first');
  return state.plan;
}

export function nowIso(env: RunbookEnv): string {
  return new Date(env.ports.clock.now()).toISOString();
}

/** How long a step has been running (0 before its first action completed and recorded its start). */
export function stepElapsedMs(state: RunbookState, env: RunbookEnv, step: StepName): number {
  const startedAt = state.steps?.[step]?.startedAt;
  return startedAt === undefined ? 0 : env.ports.clock.now() - Date.parse(startedAt);
}

/** Throws RunbookTimeoutError once a wait loop ran longer than its limit (measured from the step's start). */
export function checkTimeout(state: RunbookState, env: RunbookEnv, step: StepName, limitMs: number, waitingFor: string): void {
  const elapsed = stepElapsedMs(state, env, step);
  if (elapsed > limitMs) {
    throw new RunbookTimeoutError(`${step}: still waiting for ${waitingFor} after ${Math.round(elapsed / 1000)} s (limit ${Math.round(limitMs / 1000)} s)`);
  }
}
