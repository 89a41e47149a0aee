/** double-failover: the primary is killed, the runbook fails over; then the new primary is killed and a second runbook fails over again. */
import { killPrimaryAndFailOver } from './basic.js';
import { between, type Fault } from './fault.js';

interface DoubleFailoverPlan {
  /** Load on the first promoted primary before it is killed too. */
  readonly secondKillAfterMs: number;
}

export const doubleFailover: Fault<DoubleFailoverPlan> = {
  name: 'double-failover',
  summary: 'kill -9 of the primary; once the runbook finished, kill -9 of the new primary and fail over again (three histories in one run)',
  needs: { minReplicas: 2 },
  plan: (random) => ({ secondKillAfterMs: between(random, 500, 2_500) }),
  inject: (ctx) => killPrimaryAndFailOver(ctx, ctx.firstPrimary, 'primary killed'),
  async afterRunbook(ctx, plan, round) {
    if (round.round > 1 || round.outcome !== 'succeeded' || round.newPrimary === null) return undefined;
    await ctx.sleep(plan.secondKillAfterMs);
    return killPrimaryAndFailOver(ctx, round.newPrimary, 'new primary killed');
  },
  async verify(ctx) {
    const failovers = ctx.rounds.filter((r) => r.outcome === 'succeeded').length;
    return [{ name: 'two failovers', ok: failovers === 2, detail: `${failovers} of 2 runbooks succeeded` }];
  },
};
