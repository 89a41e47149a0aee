/**
 * kill-during-drain: the primary is killed and the runbook fails over; while its drain runs, the promoted
 * primary is killed too. That runbook fails; a second failover (triggered like the first, nobody touching the
 * journal) must promote the remaining replica and finish, with nothing lost.
 */
import { killPrimaryAndFailOver } from './basic.js';
import { between, type Fault, type RoundReport } from './fault.js';

interface KillDuringDrainPlan {
  /** How long after the drain started the promoted primary is killed. */
  readonly killAfterDrainStartMs: number;
}

export const killDuringDrain: Fault<KillDuringDrainPlan> = {
  name: 'kill-during-drain',
  summary: 'kill -9 of the primary; while the drain runs, kill -9 of the promoted primary; a second failover must finish without anyone editing the journal',
  needs: { minReplicas: 2 },
  plan: (random) => ({ killAfterDrainStartMs: between(random, 0, 300) }),
  inject: (ctx) => killPrimaryAndFailOver(ctx, ctx.firstPrimary, 'primary killed'),
  onRunbookEvent(ctx, plan, event, round) {
    if (round !== 1 || event.step !== 'drain' || event.phase !== 'start') return;
    const writer = ctx.cluster.writerId(); // repointed to the promoted primary just before the drain
    void ctx.sleep(plan.killAfterDrainStartMs).then(() => ctx.killNode(writer, 'promoted primary killed during the drain'));
  },
  async afterRunbook(ctx, _plan, round) {
    if (round.round > 1) return undefined;
    // A first runbook that failed before its drain gave the fault no moment to act: nothing more to run.
    if (!round.events.some((e) => e.step === 'drain' && e.phase === 'start')) return undefined;
    const promoted = round.newPrimary ?? ctx.cluster.writerId();
    // The kill lands at most a few hundred ms into the drain; the runbook may have ended first.
    for (let waited = 0; ctx.cluster.nodes().find((n) => n.id === promoted)?.pid !== null && waited < 10_000; waited += 20) await ctx.sleep(20);
    await ctx.waitUntilUnreachable(promoted);
    return ctx.triggeredFailover(promoted, 'drill: promoted primary killed during the drain');
  },
  async verify(ctx) {
    const [first, second] = ctx.rounds;
    return [
      {
        name: 'second failover after the kill during the drain',
        ok: second?.outcome === 'succeeded',
        detail: `round 1 ${describe(first)}; round 2 ${describe(second)}`,
      },
    ];
  },
};

/** How a round went: its outcome and error, whether it resumed a journaled plan, and which plan it ran. */
function describe(round: RoundReport | undefined): string {
  if (round === undefined) return 'not run';
  const resumed = round.events.some((e) => e.step === 'preflight' && e.phase === 'done' && e.figures.resumed === true);
  const plan = [...round.events].reverse().find((e) => e.step === 'plan' && e.phase === 'done');
  const planned = plan ? ` ${resumed ? 'resumed the journaled plan' : 'planned'} ${plan.figures.oldPrimary} -> ${plan.figures.candidate}` : '';
  return `${round.outcome}${planned}${round.error ? ` (${round.error.message})` : ''}`;
}
