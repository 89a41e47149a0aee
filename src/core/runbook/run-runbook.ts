/**
 * The sequential runner: the same actions, in the same order, with the same polling, retry and failure path
 * as the Step Functions state machine (lib/runbook.ts). Used by the CLI `--local` and the drill.
 */
import { randomUUID } from 'node:crypto';
import type { RunbookEvent } from './events.js';
import type { RunbookEnv, RunbookPorts } from './env.js';
import { RunbookErrorName } from './errors.js';
import { runAction, type RunbookAction } from './actions.js';
import { initialState, LOCAL_RUNBOOK_CONFIG, type RunbookConfig, type RunbookState } from './state.js';

export interface RunRunbookOptions {
  /** Cluster id for the lock and journal (the topology's clusterId). */
  readonly clusterId: string;
  /** Defaults: LOCAL_RUNBOOK_CONFIG. */
  readonly config?: RunbookConfig;
  /** The lock owner and journal execution id; default a random 'local-<uuid>'. */
  readonly executionId?: string;
  readonly onEvent?: (event: RunbookEvent) => void;
  readonly onNotifyError?: (error: unknown) => void;
}

export interface RunbookResult {
  readonly outcome: 'succeeded' | 'failed' | 'dry-run' | 'not-confirmed';
  readonly state: RunbookState;
  /** Set when outcome is 'failed': the error name (RunbookRefused, RunbookTimeout...) and message. */
  readonly error?: { readonly name: string; readonly message: string };
}

/** Step order after preflight and plan (mirrors the state machine). Poll actions loop until done. */
const SEQUENCE: readonly { readonly action: RunbookAction; readonly poll?: true }[] = [
  { action: 'fence' },
  { action: 'forkPoint', poll: true },
  { action: 'promote' },
  { action: 'promotionStatus', poll: true },
  { action: 'recordEpoch' },
  { action: 'isolate' },
  { action: 'repoint' },
  { action: 'startDrains' },
  { action: 'drainStatus', poll: true },
  { action: 'verify', poll: true },
  { action: 'startRebuilds' },
  { action: 'rebuildStatus', poll: true },
  { action: 'finish' },
];

export async function runRunbook(input: unknown, ports: RunbookPorts, options: RunRunbookOptions): Promise<RunbookResult> {
  const config = options.config ?? LOCAL_RUNBOOK_CONFIG;
  const env: RunbookEnv = {
    ports,
    config,
    clusterId: options.clusterId,
    onEvent: options.onEvent,
    onNotifyError: options.onNotifyError,
  };
  const executionId = options.executionId ?? `local-${randomUUID()}`;
  let state = initialState(input, executionId, new Date(ports.clock.now()).toISOString());

  const step = (action: RunbookAction) => withRetry(() => runAction(action, state, env), env);
  const loop = async (action: RunbookAction) => {
    for (;;) {
      state = await step(action);
      if (state.poll?.done) return;
      await ports.clock.sleep(state.poll?.waitMs ?? config.pollIntervalMs.drain);
    }
  };

  try {
    if (isTriggered(input)) {
      await loop('confirm');
      if (state.confirm?.status !== 'confirmed') return { outcome: 'not-confirmed', state };
    }
    state = await step('preflight');
    state = await step('plan');
    if (state.outcome === 'dry-run' || state.input.dryRun) return { outcome: 'dry-run', state };
    for (const { action, poll } of SEQUENCE) {
      if (poll) await loop(action);
      else state = await step(action);
    }
    return { outcome: 'succeeded', state };
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    const withError: RunbookState = { ...state, error: { Error: e.name, Cause: e.message } };
    try {
      state = await withRetry(() => runAction('failed', withError, env), env);
    } catch (secondary) {
      // The failure path itself failed (journal or lock unreachable): report the original error regardless.
      state = { ...withError, outcome: 'failed', warnings: [...(withError.warnings ?? []), `failure path: ${String(secondary)}`] };
    }
    return { outcome: 'failed', state, error: { name: e.name, message: e.message } };
  }
}

/** Retries RunbookTransient errors with exponential backoff, like the state machine's Retry. */
async function withRetry<T>(fn: () => Promise<T>, env: RunbookEnv): Promise<T> {
  const { intervalMs, backoffRate, maxAttempts } = env.config.retry;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!(error instanceof Error) || error.name !== RunbookErrorName.Transient || attempt >= maxAttempts) throw error;
      await env.ports.clock.sleep(intervalMs * backoffRate ** attempt);
    }
  }
}

function isTriggered(input: unknown): boolean {
  return typeof input === 'object' && input !== null && 'trigger' in input && (input as { trigger?: unknown }).trigger !== undefined;
}
