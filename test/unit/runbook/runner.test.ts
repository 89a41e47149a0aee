import { describe, expect, it } from 'vitest';
import { runAction, type RunbookAction } from '../../../src/core/runbook/actions.js';
import type { RunbookEnv } from '../../../src/core/runbook/env.js';
import type { RunbookEvent } from '../../../src/core/runbook/events.js';
import { runRunbook } from '../../../src/core/runbook/run-runbook.js';
import { RunbookTransientError } from '../../../src/core/runbook/errors.js';
import { initialState, LOCAL_RUNBOOK_CONFIG, type RunbookConfig, type RunbookState } from '../../../src/core/runbook/state.js';
import { fakes, FakeWorkers, ROOT_EPOCH, SimCluster, threeNodeCluster, type Fakes } from './fakes.js';

/** The fork point of the usual plan: pg-1's replay position on the root epoch, kept up to there. */
const FORK = { timelineId: 1, lsn: '0/3000300', epochId: ROOT_EPOCH.id, keptUpTo: '0/3000300' };

const config: RunbookConfig = { ...LOCAL_RUNBOOK_CONFIG, notifyTimeoutMs: 50 };

function run(f: Fakes, input: unknown, extra: { executionId?: string; events?: RunbookEvent[]; config?: RunbookConfig } = {}) {
  return runRunbook(input, f.ports, {
    clusterId: 'c1',
    config: extra.config ?? config,
    executionId: extra.executionId ?? 'exec-1',
    onEvent: (e) => extra.events?.push(e),
    onNotifyError: () => undefined,
  });
}

function env(f: Fakes): RunbookEnv {
  return { ports: f.ports, config, clusterId: 'c1' };
}

/** Runs actions by hand (a runner that dies after the last one), polling loops until done. */
async function runUntil(f: Fakes, executionId: string, input: unknown, actions: RunbookAction[]): Promise<RunbookState> {
  let state = initialState(input, executionId, new Date(f.clock.now()).toISOString());
  for (const action of actions) {
    do state = await runAction(action, state, env(f));
    while (state.poll && !state.poll.done);
  }
  return state;
}

describe('runRunbook: failover with fake ports', () => {
  it("runs every action inside the ports' actionScope (what an adapter keeps, database sessions, lives one action)", async () => {
    const f = fakes();
    let depth = 0;
    const probes = { inside: 0, outside: 0 };
    const ports = {
      ...f.ports,
      probe: { probe: (id: string) => (depth > 0 ? probes.inside++ : probes.outside++, f.cluster.probe(id)) },
      actionScope: async <T>(run: () => Promise<T>): Promise<T> => {
        depth += 1;
        try {
          return await run();
        } finally {
          depth -= 1;
        }
      },
    };
    const result = await runRunbook({ mode: 'failover' }, ports, { clusterId: 'c1', config, executionId: 'exec-1', onNotifyError: () => undefined });
    expect(result.outcome).toBe('succeeded');
    expect(probes.inside).toBeGreaterThan(0);
    expect(probes.outside).toBe(0);
  });

  it('fences, records the fork point before promoting, promotes, records the epoch before repointing, drains, verifies, rebuilds, notifies', async () => {
    const f = fakes();
    const events: RunbookEvent[] = [];
    let journaledAtPromote: RunbookState | undefined;
    f.cluster.onPromote = async () => {
      journaledAtPromote = (await f.journal.load())?.state as RunbookState;
    };
    const result = await run(f, { mode: 'failover' }, { events });

    expect(result.outcome).toBe('succeeded');
    expect(f.cluster.calls).toEqual(['fence:pg-0', 'promote:pg-1', 'record-epoch:pg-1', 'repoint:pg-1', 'rebuild:pg-2<-pg-1']);
    // The fork point was durable before promote was called.
    expect(journaledAtPromote?.forkPoint).toEqual(FORK);
    expect(journaledAtPromote?.plan?.candidateId).toBe('pg-1');
    expect(f.cluster.promotions).toBe(1);
    expect(f.cluster.get('pg-1').timelineId).toBe(2);
    expect(f.cluster.writerId).toBe('pg-1');
    // The new epoch on pg-1: continues the root up to the fork point, named at plan time, recorded once.
    const epoch = result.state.epoch!;
    expect(epoch).toMatchObject({ id: result.state.plan!.epochId, parentId: ROOT_EPOCH.id, generation: 2, forkLsn: '0/3000300', timelineId: 2, nodeId: 'pg-1', executionId: 'exec-1' });
    expect(f.cluster.get('pg-1').epochs!.map((e) => e.id)).toEqual([ROOT_EPOCH.id, epoch.id]);
    expect(f.workers.requests).toEqual([
      { workerId: 'w-1', request: { epochId: epoch.id } },
      { workerId: 'w-2', request: { epochId: epoch.id } },
    ]);
    expect(result.state.verification).toMatchObject({ writerAcceptsWrites: true, writerTimelineId: 2, workers: 2, resent: 8, inserted: 4, confirmed: ['w-1', 'w-2'], unconfirmed: [] });
    expect(f.lock.held.size).toBe(0);
    expect(f.journal.entry?.status).toBe('succeeded');

    const sequence = events.filter((e) => e.phase !== 'warning').map((e) => `${e.step}:${e.phase}`);
    expect(sequence).toEqual(
      ['preflight', 'plan', 'fence', 'forkPoint', 'promote', 'waitWritable', 'recordEpoch', 'isolate', 'repoint', 'drain', 'verify', 'rebuild', 'notify'].flatMap((s) => [
        `${s}:start`,
        `${s}:done`,
      ]),
    );
    const final = f.notifier.sent.at(-1)!;
    expect(final.severity).toBe('resolved');
    expect(final.title).toBe('Failover of c1 completed');
    expect(final.fields).toMatchObject({
      oldPrimary: 'pg-0',
      newPrimary: 'pg-1',
      forkPoint: 'timeline 1 at 0/3000300, epoch 00000000 kept up to 0/3000300',
      epoch: epoch.id,
      unconfirmedWorkers: 'none',
      workersDrained: 2,
      rowsResent: 8,
    });
    expect(f.notifier.sent.length).toBe(events.length);
  });

  it('a notifier that always fails never fails a step', async () => {
    const f = fakes();
    f.notifier.failing = true;
    const errors: unknown[] = [];
    const result = await runRunbook({ mode: 'failover' }, f.ports, { clusterId: 'c1', config, executionId: 'e', onNotifyError: (e) => errors.push(e) });
    expect(result.outcome).toBe('succeeded');
    expect(errors.length).toBeGreaterThan(20);
    expect(String(errors[0])).toMatch(/slack is down/);
  });

  it('a slow notifier delays a step by at most notifyTimeoutMs', async () => {
    const f = fakes();
    f.ports = { ...f.ports, notifier: { notify: () => new Promise(() => undefined) } };
    const started = Date.now();
    const result = await run(f, { mode: 'failover' }, { config: { ...config, notifyTimeoutMs: 5 } });
    expect(result.outcome).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('dryRun runs preflight and plan only: no lock, no journal, no change, no notification', async () => {
    const f = fakes();
    const result = await run(f, { mode: 'failover', dryRun: true });
    expect(result.outcome).toBe('dry-run');
    expect(result.state.plan?.candidateId).toBe('pg-1');
    expect(f.cluster.calls).toEqual([]);
    expect(f.lock.held.size).toBe(0);
    expect(f.journal.saves).toBe(0);
    expect(f.notifier.sent).toEqual([]);
  });

  it('an action that changes something refuses to run on a dry-run state', async () => {
    const f = fakes();
    const state = await runUntil(f, 'exec-1', { mode: 'failover', dryRun: true }, ['preflight', 'plan']);
    await expect(runAction('fence', state, env(f))).rejects.toThrow("dry run: refusing to run 'fence', a dry run only runs preflight and plan");
    expect(f.cluster.calls).toEqual([]);
  });

  it('dryRun reports a refusal as its result instead of failing', async () => {
    const f = fakes();
    f.cluster.get('pg-0').up = true;
    const result = await run(f, { mode: 'failover', dryRun: true });
    expect(result.outcome).toBe('dry-run');
    expect(result.state.refusal?.code).toBe('primary-healthy');
    expect(f.cluster.calls).toEqual([]);
  });

  it('refuses a failover while the primary is healthy, changes nothing, releases the lock', async () => {
    const f = fakes();
    f.cluster.get('pg-0').up = true;
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'failover' }, { events });
    expect(result.outcome).toBe('failed');
    expect(result.error?.name).toBe('RunbookRefused');
    expect(result.error?.message).toMatch(/pg-0 answers and accepts writes/);
    expect(f.cluster.calls).toEqual([]);
    expect(f.lock.held.size).toBe(0);
    const failedEvent = events.find((e) => e.phase === 'failed')!;
    expect(failedEvent.step).toBe('plan');
    expect(failedEvent.message).toMatch(/Nothing was changed/);
    expect(f.notifier.sent.at(-1)!.severity).toBe('critical');
  });

  it('refuses a second concurrent execution with a clear message and leaves the first one alone', async () => {
    const f = fakes();
    await runUntil(f, 'exec-A', { mode: 'failover' }, ['preflight', 'plan', 'fence']);
    const journalBefore = structuredClone(f.journal.entry);
    const result = await run(f, { mode: 'failover' }, { executionId: 'exec-B' });
    expect(result.outcome).toBe('failed');
    expect(result.error).toEqual({
      name: 'RunbookRefused',
      message: `another failover is running: execution exec-A holds the lock of c1 since 2024-01-01T00:00:00.000Z; wait for it to end (a runner that died frees the lock after ${config.lockTtlSeconds} s)`,
    });
    expect(f.lock.held.get('c1')?.owner).toBe('exec-A');
    expect(f.journal.entry).toEqual(journalBefore);
    expect(f.cluster.calls).toEqual(['fence:pg-0']);
  });

  it('a runner that dies after promote: the next run waits for the lock, resumes the journaled plan, never promotes twice', async () => {
    const f = fakes();
    await runUntil(f, 'exec-A', { mode: 'failover' }, ['preflight', 'plan', 'fence', 'forkPoint', 'promote']);
    expect(f.cluster.promotions).toBe(1);
    // Re-planning now would see pg-1 out of recovery and refuse: only the journal makes the re-run possible.
    const callsBefore = [...f.cluster.calls];
    const replan = await run(f, { mode: 'failover', dryRun: true }, { executionId: 'probe' });
    expect(replan.outcome).toBe('dry-run');
    expect(replan.state.plan?.candidateId).toBe('pg-1');
    expect(replan.state.resumedFrom).toEqual(['exec-A']);
    expect(f.cluster.calls).toEqual(callsBefore);

    const tooEarly = await run(f, { mode: 'failover' }, { executionId: 'exec-B' });
    expect(tooEarly.error?.message).toMatch(/^another failover is running: execution exec-A holds the lock/);

    await f.clock.sleep(config.lockTtlSeconds * 1000 + 1);
    const result = await run(f, { mode: 'failover' }, { executionId: 'exec-C' });
    expect(result.outcome).toBe('succeeded');
    expect(result.state.resumedFrom).toEqual(['exec-A']);
    expect(f.cluster.promotions).toBe(1);
    expect(f.cluster.calls.filter((c) => c.startsWith('promote:'))).toEqual(['promote:pg-1', 'promote:pg-1']);
    expect(f.cluster.get('pg-1').timelineId).toBe(2);
    expect(f.cluster.get('pg-2').inRecovery).toBe(true);
    expect(result.state.forkPoint).toEqual(FORK);
    expect(f.workers.requests.every((r) => r.request.epochId === result.state.epoch?.id)).toBe(true);
    // the epoch was named by exec-A's plan: the resumed run recorded that one, no other
    expect(f.cluster.get('pg-1').epochs!.map((e) => e.id)).toEqual([ROOT_EPOCH.id, result.state.plan!.epochId]);
  });

  it('a run whose candidate died after promotion is not resumed: the next failover plans anew from the live topology, with the lineage it knew', async () => {
    const f = fakes();
    // exec-A promoted pg-1, recorded its epoch and repointed; pg-1 dies while the workers drain.
    await runUntil(f, 'exec-A', { mode: 'failover' }, ['preflight', 'plan', 'fence', 'forkPoint', 'promote', 'promotionStatus', 'recordEpoch', 'isolate', 'repoint', 'startDrains']);
    const firstEpoch = (await f.journal.load())!.state as RunbookState;
    f.cluster.get('pg-1').up = false;
    await f.clock.sleep(config.lockTtlSeconds * 1000 + 1);
    const events: RunbookEvent[] = [];
    // pg-2 never followed pg-1: it is still on the root epoch, behind everything pg-1 took; only force promotes it
    const refused = await run(f, { mode: 'failover' }, { executionId: 'exec-B', events });
    expect(refused.error?.message).toMatch(/^pg-2 is not on the lost primary's history \(on epoch 00000000 \(generation 1, pg-0\), not on the lost primary's epoch [0-9a-f]{8} \(generation 2, pg-1\)/);
    expect(events.some((e) => e.phase === 'warning' && /not resuming execution exec-A \(in-progress\): its candidate pg-1 does not answer/.test(e.message ?? ''))).toBe(true);
    const second = await run(f, { mode: 'failover', force: true }, { executionId: 'exec-C' });
    expect(second.outcome).toBe('succeeded');
    expect(second.state.plan).toMatchObject({ oldPrimaryId: 'pg-1', candidateId: 'pg-2', forced: true });
    expect(second.state.resumedFrom).toBeUndefined();
    // a sibling of the first promotion's epoch, newer: the workers will re-send what they synced on pg-1
    expect(second.state.epoch).toMatchObject({ parentId: ROOT_EPOCH.id, generation: 3, forkLsn: '0/3000200', nodeId: 'pg-2' });
    expect(second.state.epoch!.id).not.toBe(firstEpoch.epoch!.id);
    expect(f.cluster.promotions).toBe(2);
  });

  it('a resumed run refuses a different candidate or mode', async () => {
    const f = fakes();
    await runUntil(f, 'exec-A', { mode: 'failover' }, ['preflight', 'plan', 'fence']);
    await f.clock.sleep(config.lockTtlSeconds * 1000 + 1);
    const other = await run(f, { mode: 'failover', candidate: 'pg-2' }, { executionId: 'exec-B' });
    expect(other.error?.message).toMatch(/already chose pg-1 \(execution exec-A\)/);
    const switchover = await run(f, { mode: 'switchover' }, { executionId: 'exec-C' });
    expect(switchover.error?.message).toMatch(/a failover of c1 \(pg-0 -> pg-1\) is unfinished/);
    // Refused after taking the lock: the lock was given back, the journal still holds exec-A's plan.
    expect(f.lock.held.size).toBe(0);
    expect(f.journal.entry?.executionId).toBe('exec-A');
  });

  it('every action is idempotent: running each twice gives one fence effect, one promotion, the same state', async () => {
    const f = fakes();
    const actions: RunbookAction[] = ['preflight', 'plan', 'fence', 'forkPoint', 'promote', 'promotionStatus', 'recordEpoch', 'isolate', 'repoint', 'startDrains', 'drainStatus', 'verify', 'startRebuilds', 'rebuildStatus', 'finish'];
    let state = initialState({ mode: 'failover' }, 'exec-1', new Date(f.clock.now()).toISOString());
    for (const action of actions) {
      do state = await runAction(action, state, env(f));
      while (state.poll && !state.poll.done);
      if (action === 'finish') break;
      const again = await runAction(action, state, env(f));
      expect(again.plan).toEqual(state.plan);
      expect(again.forkPoint).toEqual(state.forkPoint);
      expect(again.epoch).toEqual(state.epoch);
    }
    expect(f.cluster.get('pg-1').epochs).toHaveLength(2);
    expect(f.cluster.promotions).toBe(1);
    expect(f.cluster.writerId).toBe('pg-1');
    expect(state.outcome).toBe('succeeded');
    // Re-running startDrains kept the pending drains of this execution instead of starting new ones.
    expect(f.workers.requests.length).toBe(2);
  });

  it('a failing promote goes to the failure path: critical notification with recovery advice, journal kept, lock released; a re-run completes', async () => {
    const f = fakes();
    f.cluster.failPromote = 'InvalidDBInstanceState: instance is not a read replica';
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'failover' }, { events });
    expect(result.outcome).toBe('failed');
    expect(result.error?.message).toBe('InvalidDBInstanceState: instance is not a read replica');
    const failure = events.find((e) => e.phase === 'failed')!;
    expect(failure.step).toBe('promote');
    expect(failure.message).toMatch(/pg-0 is fenced and nothing was promoted \(fork point timeline 1 at 0\/3000300, epoch 00000000 kept up to 0\/3000300\)\. Re-run the failover to resume with pg-1/);
    expect(f.notifier.sent.at(-1)).toMatchObject({ severity: 'critical', title: 'Failover of c1: promote FAILED' });
    expect(f.journal.entry?.status).toBe('failed');
    expect(f.lock.held.size).toBe(0);

    f.cluster.failPromote = undefined;
    const again = await run(f, { mode: 'failover' }, { executionId: 'exec-2' });
    expect(again.outcome).toBe('succeeded');
    expect(again.state.resumedFrom).toEqual(['exec-1']);
    expect(f.cluster.promotions).toBe(1);
  });

  it('retries transient errors (throttling) like the state machine Retry', async () => {
    const f = fakes();
    f.cluster.throwOnce.set('repointWriter', Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const result = await run(f, { mode: 'failover' });
    expect(result.outcome).toBe('succeeded');
    expect(f.cluster.calls.filter((c) => c.startsWith('repoint'))).toEqual(['repoint:pg-1', 'repoint:pg-1']);
  });

  it('refuses to promote when the old primary answers, stays writable and cannot be isolated', async () => {
    const f = fakes();
    f.cluster.get('pg-0').up = true;
    f.cluster.get('pg-0').readOnly = true; // looks fenced to the planner...
    f.cluster.canIsolate = false;
    // ...but the fence cannot set it read-only: simulate by making fence report read-only false.
    const original = f.cluster.fence.bind(f.cluster);
    f.cluster.fence = async (id, o) => ({ ...(await original(id, o)), readOnly: false });
    const result = await run(f, { mode: 'failover' });
    expect(result.error?.name).toBe('RunbookStepFailed');
    expect(result.error?.message).toMatch(/could not fence pg-0: it answers and still accepts writes, and isolating it failed: cannot modify a failed instance; nothing was promoted/);
    expect(f.cluster.promotions).toBe(0);
  });

  it('warns when the dead old primary could not be isolated, and retries isolation after promotion', async () => {
    const f = fakes();
    f.cluster.canIsolate = false;
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'failover' }, { events });
    expect(result.outcome).toBe('succeeded');
    expect(f.cluster.calls.filter((c) => c.startsWith('fence'))).toEqual(['fence:pg-0', 'fence:pg-0']);
    const warnings = events.filter((e) => e.phase === 'warning').map((e) => `${e.step}: ${e.message}`);
    expect(warnings).toContain(
      'fence: pg-0 is not isolated (cannot modify a failed instance); it does not answer. Promoting anyway: the workers refuse every writer not on the epoch ' +
        'this failover records and re-send whatever it may still take, so acknowledged writes stay safe; isolation is retried after promotion',
    );
    expect(warnings.some((w) => w.startsWith('isolate: pg-0 could not be isolated'))).toBe(true);
  });

  it('a drain that keeps failing does not fail the failover: after drainAttempts the worker is reported, and unconfirmed once verify stops waiting', async () => {
    const f = fakes();
    f.workers.script.set('w-2', [{ state: 'failed', error: 'writer unreachable' }]);
    const events: RunbookEvent[] = [];
    const published: unknown[] = [];
    f.ports = { ...f.ports, metrics: { unconfirmedWorkers: async (...args) => void published.push(args) } };
    const result = await run(f, { mode: 'failover' }, { events });
    expect(result.outcome).toBe('succeeded');
    expect(f.workers.requests.filter((r) => r.workerId === 'w-2').length).toBe(3);
    expect(result.state.drains?.find((d) => d.workerId === 'w-2')).toMatchObject({ status: 'failed', attempts: 3, error: 'writer unreachable' });
    const warnings = events.filter((e) => e.phase === 'warning').map((e) => `${e.step}: ${e.message}`);
    expect(warnings).toContain('drain: drain failed on w-2 after 3 attempts (writer unreachable): its agent re-sends on its own when it reconnects (the lineage check); verify waits for its confirmation');
    expect(warnings.find((w) => w.startsWith('verify: not confirmed within 3 s: w-2.'))).toBeDefined();
    expect(result.state.verification).toMatchObject({ confirmed: ['w-1'], unconfirmed: ['w-2'] });
    expect(result.state.steps?.verify?.polls).toBeGreaterThan(10);
    expect(published).toEqual([['c1', result.state.epoch!.id, { confirmed: ['w-1'], unconfirmed: ['w-2'] }]]);
  });

  it('a restarted drain that cannot be started keeps the error of the attempt before (never delivered, then the instance is offline)', async () => {
    const f = fakes();
    f.workers.script.set('w-2', [{ state: 'pending' }, { state: 'failed', error: 'drain on w-2 was never delivered (TimedOut, DeliveryTimedOut)' }]);
    const drainStatus = f.workers.drainStatus.bind(f.workers);
    f.workers.drainStatus = async (workerId, handle) => {
      const status = await drainStatus(workerId, handle);
      if (status.state === 'failed') f.workers.down.add(workerId); // by the restart, the instance is known to be offline
      return status;
    };
    const result = await run(f, { mode: 'failover' }, { events: [] });
    expect(result.outcome).toBe('succeeded');
    expect(result.state.drains?.find((d) => d.workerId === 'w-2')).toEqual(
      expect.objectContaining({
        status: 'failed',
        attempts: 2,
        error: 'could not be started: worker w-2 is down; the attempt before: drain on w-2 was never delivered (TimedOut, DeliveryTimedOut)',
      }),
    );
  });

  it('verify waits for a worker that confirms late (its agent healed by itself) and finishes without a warning', async () => {
    const f = fakes();
    f.workers.down.add('w-2'); // the drain cannot be delivered at all
    let polls = 0;
    const confirmations = f.cluster.confirmations.bind(f.cluster);
    f.cluster.confirmations = async () => {
      if (++polls === 5) f.cluster.confirm('w-2', f.cluster.get('pg-1').epochs!.at(-1)!.id, 7);
      return confirmations();
    };
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'failover' }, { events });
    expect(result.outcome).toBe('succeeded');
    expect(result.state.drains?.find((d) => d.workerId === 'w-2')).toMatchObject({ status: 'failed', error: 'could not be started: worker w-2 is down' });
    expect(result.state.verification).toMatchObject({ confirmed: ['w-1', 'w-2'], unconfirmed: [] });
    expect(events.some((e) => e.step === 'verify' && e.phase === 'warning')).toBe(false);
  });

  it('a drain that never answers (SSM holding a command for an instance it still lists online) ends at the drain limit as a failed drain, not a failed failover', async () => {
    const f = fakes();
    f.workers.script.set('w-2', [{ state: 'pending' }]);
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'failover' }, { events, config: { ...config, timeoutMs: { ...config.timeoutMs, drain: 2_000 } } });
    expect(result.outcome).toBe('succeeded');
    const limit = 2;
    expect(result.state.drains?.find((d) => d.workerId === 'w-2')).toMatchObject({ status: 'failed', attempts: 1, error: `no answer within the drain limit (${limit} s)` });
    const warnings = events.filter((e) => e.phase === 'warning').map((e) => `${e.step}: ${e.message}`);
    expect(warnings).toContain(`drain: drain failed on w-2 after 1 attempts (no answer within the drain limit (${limit} s)): its agent re-sends on its own when it reconnects (the lineage check); verify waits for its confirmation`);
    expect(result.state.verification).toMatchObject({ confirmed: ['w-1'], unconfirmed: ['w-2'] });
  });

  it('a throttled drain status call is asked again at the next poll, not a failed drain', async () => {
    const f = fakes();
    const status = f.workers.drainStatus.bind(f.workers);
    let throttled = 2;
    f.workers.drainStatus = async (workerId, handle) => {
      if (workerId === 'w-1' && throttled-- > 0) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      return status(workerId, handle);
    };
    const result = await run(f, { mode: 'failover' });
    expect(result.outcome).toBe('succeeded');
    expect(f.workers.requests.filter((r) => r.workerId === 'w-1').length).toBe(1);
    expect(result.state.drains?.find((d) => d.workerId === 'w-1')).toMatchObject({ status: 'done', attempts: 1 });
  });

  it('a drain that fails once is restarted and the run succeeds', async () => {
    const f = fakes();
    f.workers.script.set('w-1', [
      { state: 'failed', error: 'connection reset' },
      { state: 'done', summary: { epochId: 'set-by-the-agent', examined: 1, resent: 1, inserted: 1, alreadyPresent: 0, remainingPending: 0, rejected: 0 } },
    ]);
    const result = await run(f, { mode: 'failover' });
    expect(result.outcome).toBe('succeeded');
    expect(f.workers.requests.filter((r) => r.workerId === 'w-1').length).toBe(2);
  });

  it('rows the new primary refused during the drains are a warning with their count, and stay in the verification', async () => {
    const f = fakes();
    f.workers.script.set('w-1', [{ state: 'done', summary: { epochId: 'set-by-the-agent', examined: 9, resent: 5, inserted: 3, alreadyPresent: 0, remainingPending: 0, rejected: 2 } }]);
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'failover' }, { events });
    expect(result.outcome).toBe('succeeded');
    expect(result.state.verification?.rejected).toBe(2);
    expect(events.filter((e) => e.phase === 'warning' && e.step === 'verify').map((e) => e.message)).toEqual([
      "2 re-sent rows were refused by pg-1 for their content (kept as rejected in the workers' buffers, with PostgreSQL's error: rds-failover-agent status); they are not on the new primary",
    ]);
  });

  it('times out a wait loop with RunbookTimeout', async () => {
    const f = fakes();
    f.cluster.get('pg-1').promotionPolls = 1_000_000;
    const result = await run(f, { mode: 'failover' }, { config: { ...config, timeoutMs: { ...config.timeoutMs, promotion: 200 } } });
    expect(result.error?.name).toBe('RunbookTimeout');
    expect(result.error?.message).toMatch(/^waitWritable: still waiting for pg-1 to accept writes \(rebooting\)/);
  });

  it('with no workers the run warns loudly', async () => {
    const f = fakes(threeNodeCluster(), new FakeWorkers([]));
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'failover' }, { events });
    expect(result.outcome).toBe('succeeded');
    expect(events.some((e) => e.phase === 'warning' && /no workers found to drain/.test(e.message ?? ''))).toBe(true);
  });

  it('a second failover to a stale replica (not rebuilt yet) needs force, and its epoch keeps nothing of what the first promotion wrote', async () => {
    const f = fakes();
    const c = f.cluster;
    const rebuild = c.rebuildReplica.bind(c);
    c.rebuildReplica = async (replicaId, primaryId) => (replicaId === 'pg-2' ? Promise.reject(new Error('InsufficientDBInstanceCapacity')) : rebuild(replicaId, primaryId));
    const first = await run(f, { mode: 'failover' }, { config: { ...config, timeoutMs: { ...config.timeoutMs, rebuild: 100 } } });
    expect(first.outcome).toBe('succeeded');
    c.get('pg-1').up = false; // the new primary dies before pg-2 was rebuilt from it: pg-2 is on the root's history still
    const refused = await run(f, { mode: 'failover' }, { executionId: 'exec-2' });
    expect(refused.error?.name).toBe('RunbookRefused');
    expect(refused.error?.message).toMatch(/^pg-2 is not on the lost primary's history/);
    const second = await run(f, { mode: 'failover', force: true }, { executionId: 'exec-3' });
    expect(second.outcome).toBe('succeeded');
    expect(second.state.plan?.candidateId).toBe('pg-2');
    // "timeline 2" again, but another history: the root up to where pg-2 had replayed, generation 3
    expect(second.state.epoch).toMatchObject({ parentId: ROOT_EPOCH.id, generation: 3, timelineId: 2, forkLsn: '0/3000200' });
    expect(second.state.lineage?.epochs.map((e) => e.generation).sort()).toEqual([1, 2, 3]);
    expect(f.workers.requests.slice(-2).map((r) => r.request.epochId)).toEqual([second.state.epoch!.id, second.state.epoch!.id]);
  });

  it('a rebuild that cannot start yet (busy, throttled) is retried each poll; a refused one fails at once with the platform\'s message, a warning that says the cluster has fewer failover candidates', async () => {
    const c = new SimCluster([
      ...threeNodeCluster().nodes,
      { id: 'pg-3', role: 'replica', up: true, inRecovery: true, timelineId: 1, lsn: '0/3000100', readOnly: false, isolated: false },
      { id: 'pg-4', role: 'replica', up: true, inRecovery: true, timelineId: 1, lsn: '0/3000100', readOnly: false, isolated: false },
    ]);
    const f = fakes(c);
    const original = c.rebuildReplica.bind(c);
    const originalStatus = c.rebuildStatus.bind(c);
    let refusals = 2;
    let throttles = 1;
    const refused = (name: string, message: string) => Object.assign(new Error(message), { name });
    c.rebuildReplica = async (replicaId, primaryId) => {
      c.calls.push(`start:${replicaId}`);
      // What the RDS adapter throws while the new primary cannot take a replica yet (it is still backing up).
      if (replicaId === 'pg-2' && refusals-- > 0) throw new RunbookTransientError('pg-1 cannot take a read replica yet (backing-up)');
      if (replicaId === 'pg-3') throw refused('AccessDenied', 'User: arn:aws:sts::1:assumed-role/rebuild is not authorized to perform: rds:CreateDBInstanceReadReplica');
      if (replicaId === 'pg-4') throw refused('InvalidParameterCombination', "You can't specify IOPS or storage throughput for engine postgres and a storage size less than 400.");
      return original(replicaId, primaryId);
    };
    c.rebuildStatus = async (nodeId) => {
      if (throttles-- > 0) throw refused('ThrottlingException', 'Rate exceeded');
      return originalStatus(nodeId);
    };
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'failover' }, { events, config: { ...config, timeoutMs: { ...config.timeoutMs, rebuild: 5_000 } } });
    expect(result.outcome).toBe('succeeded');
    expect(result.state.rebuilds).toEqual([
      { replicaId: 'pg-2', nodeId: 'pg-2', status: 'done' },
      { replicaId: 'pg-3', nodeId: 'pg-3', status: 'failed', detail: 'AccessDenied: User: arn:aws:sts::1:assumed-role/rebuild is not authorized to perform: rds:CreateDBInstanceReadReplica' },
      { replicaId: 'pg-4', nodeId: 'pg-4', status: 'failed', detail: "InvalidParameterCombination: You can't specify IOPS or storage throughput for engine postgres and a storage size less than 400." },
    ]);
    // Refused once, never asked again; the busy one was asked until it started.
    expect(c.calls.filter((x) => x.startsWith('start:'))).toEqual(['start:pg-2', 'start:pg-3', 'start:pg-4', 'start:pg-2', 'start:pg-2']);
    const warnings = events.filter((e) => e.phase === 'warning' && e.step === 'rebuild').map((e) => e.message);
    expect(warnings).toEqual([
      'replica pg-3 was not rebuilt from pg-1 (AccessDenied: User: arn:aws:sts::1:assumed-role/rebuild is not authorized to perform: rds:CreateDBInstanceReadReplica): the cluster has one failover candidate fewer until it is rebuilt by hand (docs/runbook.md)',
      "replica pg-4 was not rebuilt from pg-1 (InvalidParameterCombination: You can't specify IOPS or storage throughput for engine postgres and a storage size less than 400.): the cluster has one failover candidate fewer until it is rebuilt by hand (docs/runbook.md)",
    ]);
    const finished = events.find((e) => e.step === 'notify' && e.phase === 'done');
    expect(finished?.figures).toMatchObject({ replicasRebuilt: 'pg-2', replicasNotRebuilt: 'pg-3, pg-4' });
    expect(finished?.message).toContain('2 replicas were not rebuilt (pg-3, pg-4): the cluster has 2 failover candidates fewer until they are rebuilt by hand (docs/runbook.md).');
  });

  it('a rebuild still busy when the rebuild timeout passes fails with what it was waiting for', async () => {
    const c = new SimCluster([...threeNodeCluster().nodes]);
    const f = fakes(c);
    c.rebuildReplica = async () => {
      throw new RunbookTransientError('pg-1 cannot take a read replica yet (backing-up)');
    };
    const result = await run(f, { mode: 'failover' }, { config: { ...config, timeoutMs: { ...config.timeoutMs, rebuild: 200 } } });
    expect(result.outcome).toBe('succeeded');
    expect(result.state.rebuilds).toEqual([{ replicaId: 'pg-2', nodeId: 'pg-2', status: 'failed', detail: 'could not start within 0 s: pg-1 cannot take a read replica yet (backing-up)' }]);
  });

  it('a throttled lock renewal or journal write is transient (Step Functions retries it), not a failure of the failover (found by the AWS twin)', async () => {
    const throttled = () => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    const f = fakes();
    const state = await runUntil(f, 'exec-1', { mode: 'failover' }, ['preflight', 'plan']);
    const acquire = f.lock.acquire.bind(f.lock);
    f.lock.acquire = async () => {
      throw throttled();
    };
    await expect(runAction('fence', state, env(f))).rejects.toMatchObject({ name: 'RunbookTransient', message: 'ThrottlingException: Rate exceeded' });
    f.lock.acquire = acquire;
    const save = f.journal.save.bind(f.journal);
    f.journal.save = async () => {
      throw throttled();
    };
    await expect(runAction('fence', state, env(f))).rejects.toMatchObject({ name: 'RunbookTransient', message: 'ThrottlingException: Rate exceeded' });
    f.journal.save = save;
    expect((await runAction('fence', state, env(f))).fence?.nodeId).toBe('pg-0');
  });

  it('a candidate found promoted with no fork point journaled gets an epoch that keeps nothing of its parent: every buffered row is re-sent', async () => {
    const f = fakes();
    let state = await runUntil(f, 'exec-1', { mode: 'failover' }, ['preflight', 'plan', 'fence']);
    f.cluster.get('pg-1').inRecovery = false; // promoted behind the runbook's back
    state = await runAction('forkPoint', state, env(f));
    expect(state.forkPoint).toBeNull();
    for (const a of ['promote', 'promotionStatus', 'recordEpoch', 'isolate', 'repoint', 'startDrains'] as const) state = await runAction(a, state, env(f));
    expect(state.epoch).toMatchObject({ parentId: ROOT_EPOCH.id, forkLsn: null });
    expect(f.workers.requests[0]!.request).toEqual({ epochId: state.epoch!.id });
  });

  it('fewer workers than the stack has is a warning, and verify waits for as many confirmations', async () => {
    const f = fakes();
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'failover' }, { events, config: { ...config, expectedWorkers: f.workers.workers.length + 1 } });
    expect(result.outcome).toBe('succeeded');
    const warnings = events.filter((e) => e.phase === 'warning').map((e) => `${e.step}: ${e.message}`);
    expect(warnings.some((w) => w.startsWith(`drain: found ${f.workers.workers.length} of ${f.workers.workers.length + 1} workers to drain`))).toBe(true);
    expect(warnings.some((w) => w.startsWith('verify: not confirmed within 3 s: 1 unlisted worker(s).'))).toBe(true);
  });
});

describe('runRunbook: switchover', () => {
  function healthy(): SimCluster {
    const c = threeNodeCluster();
    c.get('pg-0').up = true;
    c.get('pg-0').lsn = '0/3000400';
    c.get('pg-1').catchUpPerProbe = 0x40;
    return c;
  }

  it('fences writes only, waits for lag 0, promotes, then isolates the old primary', async () => {
    const f = fakes(healthy());
    const result = await run(f, { mode: 'switchover' });
    expect(result.outcome).toBe('succeeded');
    expect(f.cluster.calls).toEqual(['fence-writes:pg-0', 'promote:pg-1', 'record-epoch:pg-1', 'fence:pg-0', 'repoint:pg-1', 'rebuild:pg-2<-pg-1']);
    // Caught up to the fenced primary's position before promoting: zero lag by construction, the whole history kept.
    expect(result.state.forkPoint).toEqual({ timelineId: 1, lsn: '0/3000400', epochId: ROOT_EPOCH.id, keptUpTo: '0/3000400' });
    expect(result.state.epoch).toMatchObject({ parentId: ROOT_EPOCH.id, forkLsn: '0/3000400' });
    expect(result.state.steps?.forkPoint?.polls).toBeGreaterThan(1);
    expect(f.cluster.get('pg-0').isolated).toBe(true);
  });

  it('a switchover that times out waiting for lag 0 gives the primary its writes back', async () => {
    const c = healthy();
    c.get('pg-1').catchUpPerProbe = 0;
    const f = fakes(c);
    const events: RunbookEvent[] = [];
    const result = await run(f, { mode: 'switchover' }, { events, config: { ...config, timeoutMs: { ...config.timeoutMs, catchUp: 100 } } });
    expect(result.error?.name).toBe('RunbookTimeout');
    expect(f.cluster.calls).toEqual(['fence-writes:pg-0', 'unfence:pg-0']);
    expect(f.cluster.get('pg-0').readOnly).toBe(false);
    expect(f.cluster.promotions).toBe(0);
    expect(events.find((e) => e.phase === 'failed')?.message).toMatch(/gave pg-0 its writes back/);
  });
});

describe('runRunbook: an old primary that can be neither isolated nor reached', () => {
  it('is not promoted over while the platform is recovering it: two primaries would follow', async () => {
    const f = fakes();
    f.cluster.canIsolate = false;
    f.cluster.platformStatus['pg-0'] = 'rebooting';
    const result = await run(f, { mode: 'failover' });
    expect(result.outcome).toBe('failed');
    expect(result.error?.message).toMatch(/pg-0 is being recovered by the platform itself \(status rebooting\)/);
    expect(f.cluster.promotions).toBe(0);
    expect(f.cluster.calls.filter((c) => c.startsWith('fence'))).toEqual([]);
  });

  it('is promoted over when the platform says it is not coming back by itself (isolation retried after promotion)', async () => {
    const f = fakes();
    f.cluster.canIsolate = false;
    f.cluster.platformStatus['pg-0'] = 'failed';
    const result = await run(f, { mode: 'failover' });
    expect(result.outcome).toBe('succeeded');
    expect(f.cluster.promotions).toBe(1);
  });
});

describe('runRunbook: auto-trigger confirmation', () => {
  it('starts only after the primary stayed unreachable for confirmUnreachableMs', async () => {
    const f = fakes();
    const result = await run(f, { mode: 'failover', trigger: { source: 'rds-event', sourceId: 'pg-0', eventId: 'RDS-EVENT-0031' } });
    expect(result.outcome).toBe('succeeded');
    const polls = result.state.steps?.confirm?.polls ?? 0;
    expect(polls).toBe(Math.ceil(config.confirmUnreachableMs / config.pollIntervalMs.confirm) + 1);
  });

  it('does nothing when the primary answers', async () => {
    const f = fakes();
    f.cluster.get('pg-0').up = true;
    const result = await run(f, { mode: 'failover', trigger: { source: 'rds-event', sourceId: 'pg-0' } });
    expect(result.outcome).toBe('not-confirmed');
    expect(result.state.confirm?.status).toBe('reachable');
    expect(f.cluster.calls).toEqual([]);
    expect(f.lock.held.size).toBe(0);
  });

  it('does not fail over while the platform recovers the primary itself (RDS Multi-AZ failover)', async () => {
    const f = fakes();
    f.cluster.platformStatus['pg-0'] = 'failing-over';
    const result = await run(f, { mode: 'failover', trigger: { source: 'rds-event', sourceId: 'pg-0' } });
    expect(result.outcome).toBe('not-confirmed');
    expect(result.state.confirm).toEqual({ status: 'recovering', detail: 'pg-0 does not answer, but the platform is recovering it (status failing-over); no failover' });
    expect(f.cluster.calls).toEqual([]);
    expect(f.cluster.promotions).toBe(0);
  });

  it('ignores events about a node that is not the writer', async () => {
    const f = fakes();
    const result = await run(f, { mode: 'failover', trigger: { source: 'rds-event', sourceId: 'pg-2' } });
    expect(result.outcome).toBe('not-confirmed');
    expect(result.state.confirm).toEqual({ status: 'not-primary', detail: 'event about pg-2, but the writer is pg-0' });
  });
});

describe('runRunbook: bad input', () => {
  it.each([
    [null, 'runbook input must be a JSON object like {"mode": "failover"}, got null'],
    [{ mode: 'failback' }, `runbook input: mode must be 'failover' or 'switchover', got "failback"`],
    [{ mode: 'failover', force: 'yes' }, 'runbook input: force must be true or false, got "yes"'],
    [{ mode: 'failover', candidate: 'pg 1' }, `runbook input: candidate must be a DB instance identifier (a letter, then letters, digits or '-', at most 63), got "pg 1"`],
    [{ mode: 'failover', canidate: 'pg-1' }, `runbook input: unknown field 'canidate'; expected only mode, candidate, force, dryRun, trigger`],
    [{ mode: 'switchover', trigger: { source: 'rds-event', sourceId: 'pg-0' } }, `runbook input: a trigger only starts mode 'failover', got mode 'switchover'`],
  ])('%j is refused with a clear error and nothing is touched', async (input, message) => {
    const f = fakes();
    const result = await run(f, input);
    expect(result.outcome).toBe('failed');
    expect(result.error).toEqual({ name: 'RunbookInvalidInput', message });
    expect(f.cluster.calls).toEqual([]);
    expect(f.lock.held.size).toBe(0);
    expect(f.journal.saves).toBe(0);
  });
});
