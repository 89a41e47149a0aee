/**
 * controller-crash: the primary is killed; the runbook runs in its own process, which is SIGKILLed at a seeded
 * step (before, during or after the promotion) and started again as an operator would (`failover`, no trigger).
 * It must resume from its journal, never promote a second node, and finish.
 */
import type { RunbookEvent, StepName } from '../../../core/runbook/index.js';
import { PgDatabaseProbe } from '../../../pg/probe.js';
import type { ReachableProbe } from '../../../ports/database-probe.js';
import { killPrimaryAndFailOver } from './basic.js';
import { between, type Fault } from './fault.js';

/** Where the controller can be killed: the event it is killed on, and where that is relative to the promotion. */
export const CRASH_POINTS: readonly { readonly step: StepName; readonly phase: 'start' | 'done'; readonly promotion: 'before' | 'during' | 'after' }[] = [
  { step: 'preflight', phase: 'done', promotion: 'before' },
  { step: 'plan', phase: 'done', promotion: 'before' },
  { step: 'fence', phase: 'done', promotion: 'before' },
  { step: 'forkPoint', phase: 'done', promotion: 'before' },
  { step: 'promote', phase: 'start', promotion: 'during' },
  { step: 'promote', phase: 'done', promotion: 'after' },
  { step: 'waitWritable', phase: 'done', promotion: 'after' },
  { step: 'repoint', phase: 'done', promotion: 'after' },
  { step: 'drain', phase: 'start', promotion: 'after' },
  { step: 'verify', phase: 'done', promotion: 'after' },
  { step: 'rebuild', phase: 'start', promotion: 'after' },
];

interface ControllerCrashPlan {
  readonly crashAt: (typeof CRASH_POINTS)[number];
  /** Time between the kill and the restart. */
  readonly restartAfterMs: number;
}

export const controllerCrash: Fault<ControllerCrashPlan> = {
  name: 'controller-crash',
  summary: 'kill -9 of the primary; the process running the runbook is SIGKILLed at a seeded step and started again: it resumes from its journal, never promotes twice, finishes',
  needs: { controllerProcess: true },
  plan: (random) => ({ crashAt: CRASH_POINTS[Math.floor(random() * CRASH_POINTS.length)]!, restartAfterMs: between(random, 0, 500) }),
  inject: (ctx) => killPrimaryAndFailOver(ctx, ctx.firstPrimary, 'primary killed'),
  onRunbookEvent(ctx, plan, event: RunbookEvent, round) {
    if (round !== 1 || event.step !== plan.crashAt.step || event.phase !== plan.crashAt.phase) return;
    if (ctx.controller.crash()) ctx.nemesis('controller killed', `SIGKILL of the runbook process at ${event.step} ${event.phase} (${plan.crashAt.promotion} the promotion)`);
  },
  async afterRunbook(ctx, plan, round) {
    if (round.outcome !== 'crashed') return undefined;
    await ctx.sleep(plan.restartAfterMs);
    ctx.nemesis('controller restarted', 'failover started again by the operator (no trigger): it resumes from the journal');
    return { input: { mode: 'failover' } };
  },
  async verify(ctx, plan) {
    const crashed = ctx.rounds.some((r) => r.outcome === 'crashed');
    const promoted = new Set(ctx.rounds.flatMap((r) => r.events).filter((e) => e.step === 'promote' && e.phase === 'done').map((e) => String(e.figures.node)));
    const probe = new PgDatabaseProbe((id) => ctx.cluster.clientConfig(id), { connectTimeoutMs: 2_000 });
    const probes = await Promise.all(ctx.cluster.nodes().filter((n) => n.pid !== null).map((n) => probe.probe(n.id)));
    const primaries = probes.filter((p): p is ReachableProbe => p.reachable && !p.inRecovery);
    const timelines = primaries.map((p) => `${p.nodeId} on timeline ${p.timelineId}`).join(', ') || 'none';
    const planned = ctx.rounds.flatMap((r) => r.events).filter((e) => e.step === 'plan' && e.phase === 'done').map((e) => String(e.figures.candidate));
    const restart = ctx.rounds.find((r) => r.round === 2);
    const resumed = restart?.events.some((e) => e.step === 'preflight' && e.phase === 'done' && e.figures.resumed === true) ?? false;
    const journaledPlan = plan.crashAt.step !== 'preflight';
    return [
      { name: 'controller killed', ok: crashed, detail: crashed ? `at ${plan.crashAt.step} ${plan.crashAt.phase}` : `the runbook never reached ${plan.crashAt.step} ${plan.crashAt.phase}` },
      {
        name: 'resumed from the journal',
        ok: !journaledPlan || resumed,
        detail: journaledPlan ? (resumed ? 'the restarted run resumed the journaled plan' : 'the restarted run did not resume the journaled plan') : 'killed before a plan was journaled: the restarted run planned afresh',
      },
      {
        name: 'promoted once',
        ok: promoted.size <= 1 && new Set(planned).size <= 1 && primaries.length === 1 && primaries[0]!.timelineId === 2,
        detail: `promoted ${[...promoted].join(', ') || 'nothing'}; planned candidates ${[...new Set(planned)].join(', ') || '-'}; primaries now: ${timelines}`,
      },
    ];
  },
};
