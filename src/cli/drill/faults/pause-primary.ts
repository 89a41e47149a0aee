/**
 * pause-primary: every process of the primary is stopped (SIGSTOP), as a host that stalls. The monitor finds it
 * silent and the runbook fails over, but cannot stop it: the controller does not own that host (as in AWS, where a
 * stalled instance does not restart when asked), so the fence reports it not isolated. The workers follow the
 * writer as AWS workers do (a session is kept until it breaks, the agent's 60 s query timeout), so their sessions
 * to the old primary are live, some with a statement in flight. Once the runbook finished, the host resumes
 * (SIGCONT) and the load goes on for at least 5 s: the zombie commits what was in flight, and would take more.
 */
import { between, type Fault } from './fault.js';

interface PausePlan {
  /** How long after the runbook finished the old primary resumes. */
  readonly resumeAfterMs: number;
  /** Load kept running after it resumed, before the drill stops the load. */
  readonly loadAfterResumeMs: number;
}

export const pausePrimary: Fault<PausePlan> = {
  name: 'pause-primary',
  summary: 'SIGSTOP of every process of the primary; fail over without being able to stop it; SIGCONT once the runbook finished, with the workers\' sessions to it still open',
  needs: { writerFollow: 'session' },
  plan: (random) => ({ resumeAfterMs: between(random, 100, 1_000), loadAfterResumeMs: between(random, 5_000, 6_000) }),
  async inject(ctx) {
    const pids = ctx.cluster.pauseNode(ctx.firstPrimary);
    ctx.inject('primary paused', `SIGSTOP of ${pids.length} processes of ${ctx.firstPrimary}`);
    await ctx.waitUntilUnreachable(ctx.firstPrimary);
    return { ...ctx.triggeredFailover(ctx.firstPrimary, 'drill: primary stalled'), controllerOwnsNodes: false };
  },
  async afterRunbook(ctx, plan, round) {
    if (round.round > 1) return undefined;
    await ctx.sleep(plan.resumeAfterMs);
    resume(ctx);
    await ctx.sleep(plan.loadAfterResumeMs);
    return undefined;
  },
  async heal(ctx) {
    if (ctx.nemesisTime('primary resumed') === undefined) resume(ctx);
  },
  async verify(ctx) {
    const resumedAt = ctx.nemesisTime('primary resumed');
    // What the zombie got from the workers once it resumed: statements it committed that the agents did not count
    // as synced (they re-send them to the new writer), and sessions refused for their lineage.
    const statuses = ctx.workers.bufferStatuses();
    const superseded = statuses.reduce((n, s) => n + s.lineage.supersededCommits, 0);
    const refusals = statuses.reduce((n, s) => n + s.lineage.writerRefusals, 0);
    const detail = resumedAt === undefined ? 'never resumed' : `resumed with the load running; the workers re-sent ${superseded} rows the zombie committed and refused it ${refusals} times`;
    return [{ name: 'the old primary resumed after the runbook', ok: resumedAt !== undefined, detail }];
  },
};

function resume(ctx: Parameters<NonNullable<Fault['heal']>>[0]): void {
  const pids = ctx.cluster.resumeNode(ctx.firstPrimary);
  ctx.nemesis('primary resumed', `SIGCONT of ${pids.length} processes of ${ctx.firstPrimary}`);
}
