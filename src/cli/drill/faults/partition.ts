/**
 * partition: the controller (the runbook and its monitor probe) loses the primary, while the workers and the
 * replicas still reach it, for a seeded time, but at least until the runbook fenced it (a partition that heals
 * before the plan only makes the runbook refuse: "the primary answers", which is right and tests nothing);
 * then the partition heals. The runbook confirms the primary unreachable from where it stands and fails over
 * while workers are still writing to the old primary.
 */
import { between, type Fault } from './fault.js';

interface PartitionPlan {
  /** How long the controller cannot reach the primary (packets dropped, not refused), at least until the fence step is done. */
  readonly holdMs: number;
}

export const partition: Fault<PartitionPlan> = {
  name: 'partition',
  summary: 'the controller and its probe cannot reach the primary (dropped packets) while the workers and replicas still can, for a seeded time; then it heals',
  // The workers follow the writer as on AWS: their sessions to the old primary live until something breaks them.
  needs: { network: true, writerFollow: 'session' },
  plan: (random) => ({ holdMs: between(random, 2_000, 8_000) }),
  async inject(ctx, plan) {
    const network = ctx.network!;
    const node = ctx.firstPrimary;
    network.cut('controller', node, 'drop');
    ctx.inject('partition', `controller ✕ ${node} for ${plan.holdMs} ms; workers and replication still reach it`);
    ctx.later(plan.holdMs, async () => {
      await ctx.runbookReached('fence', 'done');
      network.heal('controller', node);
      ctx.nemesis('partition healed', `controller ↔ ${node}`);
    });
    await ctx.waitUntilUnreachable(node);
    return ctx.triggeredFailover(node, 'drill: the controller lost the primary');
  },
};
