/**
 * worker-down: one worker's agent is killed just before the primary, stays down through the whole runbook (its drain
 * cannot be delivered, as SSM cannot reach an instance that is not online) and starts again once the runbook
 * finished. Its application's appends go on into the buffer meanwhile. The rows it had synced above the fork
 * must come back through the agent itself.
 */
import { killPrimaryAndFailOver } from './basic.js';
import { between, type Fault } from './fault.js';

interface WorkerDownPlan {
  /** Which worker (index). */
  readonly worker: number;
  /** How long its agent is down before the primary is killed. */
  readonly downBeforeMs: number;
}

export const workerDown: Fault<WorkerDownPlan> = {
  name: 'worker-down',
  summary: "one worker's agent is down during the whole runbook (no drain reaches it) and comes back afterwards; its appends go on",
  needs: { agentDaemons: true },
  plan: (random, drill) => ({ worker: between(random, 0, drill.workers - 1), downBeforeMs: between(random, 100, 600) }),
  async inject(ctx, plan) {
    const workerId = ctx.workers.ids()[plan.worker]!;
    await ctx.workers.stopAgent(workerId, 'SIGKILL');
    ctx.nemesis('worker agent down', `kill -9 of ${workerId}'s agent`);
    await ctx.sleep(plan.downBeforeMs);
    return killPrimaryAndFailOver(ctx, ctx.firstPrimary, 'primary killed');
  },
  async afterRunbook(ctx, plan, round) {
    if (round.round > 1) return undefined;
    const workerId = ctx.workers.ids()[plan.worker]!;
    ctx.workers.startAgent(workerId);
    ctx.nemesis('worker agent back', `${workerId}'s agent started again`);
    return undefined;
  },
  async verify(ctx, plan) {
    const workerId = ctx.workers.ids()[plan.worker]!;
    const verifyDone = ctx.rounds[0]?.events.find((e) => e.step === 'verify' && e.phase === 'done');
    const unconfirmed = String(verifyDone?.figures.unconfirmed ?? '');
    const epoch = verifyDone?.figures.epoch;
    const status = ctx.workers.bufferStatuses().find((s) => s.bufferPath.includes(`${workerId}.outbox`));
    const confirmed = status?.lineage.confirmedEpoch ?? null;
    return [
      { name: 'the runbook reported the worker unconfirmed', ok: unconfirmed.split(', ').includes(workerId), detail: `verify: unconfirmed=${unconfirmed || 'none'}` },
      {
        name: 'the worker confirmed the epoch once it was back',
        ok: epoch !== undefined && confirmed === epoch,
        detail: `${workerId} confirmed ${confirmed ?? 'nothing'}; the runbook recorded ${String(epoch ?? 'no epoch')}`,
      },
    ];
  },
};
