/**
 * The runbook's actions and the one function that runs any of them: the Lambda handlers, the local runner and
 * the state-machine tests all go through `runAction`, so events, lock renewal, journaling and step timing are
 * identical everywhere.
 */
import { notifySafely } from '../notify-safely.js';
import { classifyError, RunbookInputError, RunbookRefusedError } from './errors.js';
import { toNotification, type RunbookEvent, type RunbookEventPhase, type EventFigures } from './events.js';
import type { RunbookEnv } from './env.js';
import { assertRunbookState, type RunbookState, type StepName, type StepTiming } from './state.js';
import { nowIso, type ActionSpec } from './step-types.js';
import { drainStatus, startDrains } from './steps/drain.js';
import { fence, isolate } from './steps/fence.js';
import { currentStep, failed, finish, saveJournal } from './steps/finish.js';
import { forkPoint } from './steps/fork-point.js';
import { confirm, plan, preflight } from './steps/preflight.js';
import { promote, promotionStatus } from './steps/promote.js';
import { recordEpoch } from './steps/record-epoch.js';
import { rebuildStatus, startRebuilds } from './steps/rebuild.js';
import { repoint } from './steps/repoint.js';
import { verify } from './steps/verify.js';

export const RUNBOOK_ACTIONS = {
  confirm: { step: 'confirm', poll: 'confirm', renewsLock: false, run: confirm },
  preflight: { step: 'preflight', renewsLock: false, run: preflight },
  plan: { step: 'plan', renewsLock: true, run: plan },
  fence: { step: 'fence', renewsLock: true, run: fence },
  forkPoint: { step: 'forkPoint', poll: 'catchUp', renewsLock: true, run: forkPoint },
  promote: { step: 'promote', renewsLock: true, run: promote },
  promotionStatus: { step: 'waitWritable', poll: 'promotion', renewsLock: true, run: promotionStatus },
  recordEpoch: { step: 'recordEpoch', renewsLock: true, run: recordEpoch },
  isolate: { step: 'isolate', renewsLock: true, run: isolate },
  repoint: { step: 'repoint', renewsLock: true, run: repoint },
  startDrains: { step: 'drain', renewsLock: true, run: startDrains },
  drainStatus: { step: 'drain', poll: 'drain', renewsLock: true, run: drainStatus },
  verify: { step: 'verify', poll: 'confirmations', renewsLock: true, run: verify },
  startRebuilds: { step: 'rebuild', renewsLock: true, run: startRebuilds },
  rebuildStatus: { step: 'rebuild', poll: 'rebuild', renewsLock: true, run: rebuildStatus },
  finish: { step: 'notify', renewsLock: true, run: finish },
  failed: { step: 'notify', renewsLock: false, run: failed },
} as const satisfies Record<string, ActionSpec>;

export type RunbookAction = keyof typeof RUNBOOK_ACTIONS;

/** The only actions a dry run may run: they change nothing. */
const READ_ONLY: ReadonlySet<RunbookAction> = new Set(['confirm', 'preflight', 'plan']);

/** Actions that start a multi-action step without finishing it (the following poll action finishes it). */
const OPENS_STEP: ReadonlySet<RunbookAction> = new Set(['startDrains', 'startRebuilds']);

export function isRunbookAction(value: unknown): value is RunbookAction {
  return typeof value === 'string' && Object.hasOwn(RUNBOOK_ACTIONS, value);
}

/** Runs one action on a state and returns the next state. Throws (classified) errors for Retry/Catch. */
export async function runAction(action: RunbookAction, rawState: unknown, env: RunbookEnv): Promise<RunbookState> {
  if (!isRunbookAction(action)) throw new RunbookInputError(`unknown runbook action '${String(action)}': expected one of ${Object.keys(RUNBOOK_ACTIONS).join(', ')}`);
  const spec: ActionSpec = RUNBOOK_ACTIONS[action];
  const state = assertRunbookState(rawState);
  const deliveries: Promise<void>[] = [];
  const emit = (s: RunbookState, step: StepName, phase: RunbookEventPhase, figures: EventFigures = {}, message?: string) =>
    deliveries.push(publish(env, s, step, phase, figures, message));

  try {
    if (action === 'failed') {
      const result = await spec.run(state, env);
      emit(result.state, currentStep(state) ?? 'preflight', 'failed', result.figures, result.message);
      return result.state;
    }

    const dryRun = state.input?.dryRun === true;
    if (dryRun && !READ_ONLY.has(action)) throw new RunbookInputError(`dry run: refusing to run '${action}', a dry run only runs preflight and plan`);
    let current = state;
    if (spec.renewsLock && state.lockHeld && !dryRun && lockDue(state, spec, env)) current = await renewLock(current, env);

    const timing = current.steps?.[spec.step];
    const startedAt = timing?.startedAt ?? nowIso(env);
    if (!timing?.startedAt) emit(current, spec.step, 'start');
    const withStart = setTiming(current, spec.step, { ...timing, startedAt, ...(spec.poll ? { polls: (timing?.polls ?? 0) + 1 } : {}) });

    let result;
    try {
      const run = () => spec.run(withStart, env);
      result = await (env.ports.actionScope ? env.ports.actionScope(run) : run());
    } catch (error) {
      throw classifyError(error);
    }
    let next = result.state;
    const completes = result.done && !OPENS_STEP.has(action);
    if (completes) next = setTiming(next, spec.step, { ...next.steps?.[spec.step], startedAt, finishedAt: nowIso(env) });
    if (spec.poll) {
      const waitMs = env.config.pollIntervalMs[spec.poll];
      next = { ...next, poll: { done: result.done, waitMs, waitSeconds: Math.max(1, Math.ceil(waitMs / 1000)) } };
    } else if (next.poll) {
      next = { ...next, poll: undefined };
    }
    for (const warning of result.warnings ?? []) emit(next, spec.step, 'warning', {}, warning);
    if (completes) emit(next, spec.step, 'done', result.figures, result.message);

    const journaled = action !== 'finish' && next.lockHeld && !dryRun && (result.done || result.persist || !spec.poll);
    if (journaled) await saveJournal(next, env, 'in-progress');
    return next;
  } catch (error) {
    // The lock renewal and the journal write are AWS calls too: throttled, they are retried like the step's own.
    throw classifyError(error);
  } finally {
    await settle(deliveries, env.config.notifyTimeoutMs);
  }
}

async function renewLock(state: RunbookState, env: RunbookEnv): Promise<RunbookState> {
  const lock = await env.ports.lock.acquire(env.clusterId, state.executionId, env.config.lockTtlSeconds);
  if (!lock.acquired) {
    throw new RunbookRefusedError(
      `execution ${state.executionId} lost the failover lock of ${env.clusterId} to ${lock.heldBy} (since ${lock.since}); it stops here without changing anything more`,
    );
  }
  return { ...state, lockRenewedAt: nowIso(env) };
}

/** Actions that change something always re-check the lock; polls renew it a few times per TTL only. */
function lockDue(state: RunbookState, spec: ActionSpec, env: RunbookEnv): boolean {
  if (!spec.poll || !state.lockRenewedAt) return true;
  return env.ports.clock.now() - Date.parse(state.lockRenewedAt) >= (env.config.lockTtlSeconds * 1000) / 4;
}

function setTiming(state: RunbookState, step: StepName, timing: StepTiming): RunbookState {
  return { ...state, steps: { ...state.steps, [step]: timing } };
}

async function publish(env: RunbookEnv, state: RunbookState, step: StepName, phase: RunbookEventPhase, figures: EventFigures, message?: string): Promise<void> {
  const event: RunbookEvent = {
    executionId: state.executionId,
    clusterId: state.clusterId ?? env.clusterId,
    mode: state.input?.mode === 'switchover' ? 'switchover' : 'failover',
    step,
    phase,
    at: nowIso(env),
    figures,
    ...(message ? { message } : {}),
    ...(state.input?.dryRun ? { dryRun: true } : {}),
  };
  try {
    env.onEvent?.(event);
  } catch {
    // A progress printer must never fail a step.
  }
  if (event.dryRun) return; // dry runs change nothing and tell nobody but the caller
  await notifySafely(env.ports.notifier, toNotification(event), env.onNotifyError);
}

/** Waits for notification deliveries, at most timeoutMs: a slow Slack never holds a failover step. */
async function settle(deliveries: Promise<void>[], timeoutMs: number): Promise<void> {
  if (deliveries.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref?.();
  });
  await Promise.race([Promise.all(deliveries), timeout]);
  clearTimeout(timer);
}
