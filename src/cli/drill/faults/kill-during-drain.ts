/**
 * kill-during-drain: the primary is killed and the runbook fails over; while its drain runs, the promoted
 * primary is killed too. A second failover, triggered like the first (nobody touching the journal), must
 * promote the remaining replica. That replica never followed the promoted primary (the replicas are rebuilt
 * after the drain), so it is behind by all the promoted primary wrote: the lag guard refuses it, as it should,
 * and the operator runs the failover again with --force, as the refusal says; that one must finish, with
 * nothing lost.
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
    if (round.round === 1) {
      // A first runbook that failed before its drain gave the fault no moment to act: nothing more to run.
      if (!round.events.some((e) => e.step === 'drain' && e.phase === 'start')) return undefined;
      const promoted = round.newPrimary ?? ctx.cluster.writerId();
      // The kill lands at most a few hundred ms into the drain; the runbook may have ended first.
      for (let waited = 0; ctx.cluster.nodes().find((n) => n.id === promoted)?.pid !== null && waited < 10_000; waited += 20) await ctx.sleep(20);
      await ctx.waitUntilUnreachable(promoted);
      return ctx.triggeredFailover(promoted, 'drill: promoted primary killed during the drain');
    }
    if (round.round === 2 && refusedByLagGuard(round)) {
      ctx.nemesis('operator forces the failover', 'the runbook refused the remaining replica (behind the lost primary); re-run with --force, as it says');
      return { input: { mode: 'failover', force: true } };
    }
    return undefined;
  },
  async verify(ctx) {
    const last = ctx.rounds[ctx.rounds.length - 1];
    return [
      {
        name: 'failover after the kill during the drain',
        ok: ctx.rounds.length >= 2 && last?.outcome === 'succeeded',
        detail: ctx.rounds.map((r) => `round ${r.round} ${describe(r)}`).join('; '),
      },
    ];
  },
};

/** How a round went: its outcome and error, whether it resumed a journaled plan, and which plan it ran. */
function describe(round: RoundReport): string {
  const resumed = round.events.some((e) => e.step === 'preflight' && e.phase === 'done' && e.figures.resumed === true);
  const plan = [...round.events].reverse().find((e) => e.step === 'plan' && e.phase === 'done');
  const planned = plan ? ` ${resumed ? 'resumed the journaled plan' : 'planned'} ${plan.figures.oldPrimary} -> ${plan.figures.candidate}` : '';
  return `${round.outcome}${planned}${round.error ? ` (${round.error.message})` : ''}`;
}

/** The planner's lag guard refused the candidate: the runbook says to re-run with force. */
function refusedByLagGuard(round: RoundReport): boolean {
  return round.outcome === 'failed' && round.error?.name === 'RunbookRefused' && /with force/.test(round.error.message);
}
