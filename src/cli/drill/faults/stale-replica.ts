/**
 * stale-replica: the primary is killed and the runbook fails over; as its rebuild step starts (the other replica
 * still follows the dead primary's history), the promoted primary is killed too. The second failover can only
 * promote that stale replica, forced: it is behind by everything the first promoted primary took, and also calls
 * its new timeline "2".
 */
import { killPrimaryAndFailOver } from './basic.js';
import type { Fault } from './fault.js';

export const staleReplica: Fault = {
  name: 'stale-replica',
  summary: 'kill -9 of the primary; as the rebuild starts, kill -9 of the promoted one; fail over again to the replica that never followed it (forced)',
  needs: { minReplicas: 2 },
  plan: () => ({}),
  inject: (ctx) => killPrimaryAndFailOver(ctx, ctx.firstPrimary, 'primary killed'),
  onRunbookEvent(ctx, _plan, event, round) {
    if (round !== 1 || event.step !== 'rebuild' || event.phase !== 'start') return;
    // The signal goes out before the rebuild step runs: the other replica is never repointed at the promoted one.
    void ctx.killNode(ctx.cluster.writerId(), 'promoted primary killed before the rebuild');
  },
  async afterRunbook(ctx, _plan, round) {
    if (round.round > 1 || round.newPrimary === null) return undefined;
    await ctx.waitUntilUnreachable(round.newPrimary);
    return ctx.triggeredFailover(round.newPrimary, 'drill: promoted primary killed before the rebuild', true);
  },
  async verify(ctx) {
    const second = ctx.rounds[1];
    return [{ name: 'second failover to the stale replica', ok: second?.outcome === 'succeeded', detail: second ? `round 2 ${second.outcome}${second.error ? ` (${second.error.message})` : ''}` : 'not run' }];
  },
};
