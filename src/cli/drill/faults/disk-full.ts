/**
 * disk-full: one worker's buffer volume fills up (its appends get no room beyond what the buffer holds: SQLite's
 * max_page_count on the appender's connection, portable, no root) while the primary is killed and the runbook
 * fails over; space comes back after a seeded time. Appends are refused with a clear error, never acknowledged
 * and then lost; the worker acknowledges again once there is room. The agents run as their own processes, as on
 * a worker instance: the application's appends are refused, the agent's syncing and draining go on.
 */
import { killPrimaryAndFailOver } from './basic.js';
import { between, type Fault } from './fault.js';

interface DiskFullPlan {
  readonly worker: string;
  readonly fullForMs: number;
  /** Time between the disk filling up and the primary being killed. */
  readonly killAfterMs: number;
}

export const diskFull: Fault<DiskFullPlan> = {
  name: 'disk-full',
  summary: "one worker's buffer volume fills up (appends refused with a clear error, nothing acknowledged is lost) while the primary is killed; space comes back after a seeded time",
  needs: { agentDaemons: true },
  plan: (random, drill) => ({ worker: `w${between(random, 1, drill.workers)}`, fullForMs: between(random, 1_500, 4_000), killAfterMs: between(random, 200, 1_000) }),
  async inject(ctx, plan) {
    ctx.workers.setDiskSpace(plan.worker, 'full');
    ctx.nemesis('disk full', `${plan.worker}'s buffer volume has no room left`);
    ctx.later(plan.fullForMs, () => {
      ctx.workers.setDiskSpace(plan.worker, null);
      ctx.nemesis('disk space back', plan.worker);
    });
    await ctx.sleep(plan.killAfterMs);
    return killPrimaryAndFailOver(ctx, ctx.firstPrimary, 'primary killed');
  },
  async verify(ctx, plan) {
    const record = ctx.workers.records().get(plan.worker)!;
    const back = ctx.nemesisTime('disk space back') ?? Number.POSITIVE_INFINITY;
    const ackedAfter = record.times.filter((t) => t > back).length;
    const clear = record.firstRefusal !== null && /is full/.test(record.firstRefusal);
    return [
      {
        name: 'appends refused while full',
        ok: record.refused.length > 0 && clear,
        detail: record.refused.length > 0 ? `${record.refused.length} appends refused: ${record.firstRefusal}` : `${plan.worker} never refused an append`,
      },
      { name: 'worker recovered', ok: ackedAfter > 0, detail: `${ackedAfter} appends acknowledged by ${plan.worker} after the space came back` },
    ];
  },
};
