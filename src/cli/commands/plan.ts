/**
 * `rds-failover plan`: what a failover (or switchover) would do now and why, or why it would be refused.
 * It is the runbook's own dry run (preflight + plan, nothing changed): locally runRunbook({dryRun: true}),
 * in AWS a state machine execution with dryRun: true.
 */
import { Option, type Command } from 'commander';
import { renderKeyValues, renderTable, type Column } from '../../core/format-table.js';
import { formatBytes } from '../../core/format-units.js';
import { STEP_LABELS, describeForkPoint, type CandidateAssessment, type PlanRefusal, type RunbookMode, type RunbookPlan, type RunbookState } from '../../core/runbook/index.js';
import { checkAwsCandidate, runAwsRunbook } from '../aws/aws-runbook.js';
import { AwsTarget } from '../aws/aws-target.js';
import { checkLocalCandidate, runLocalRunbook } from '../local/local-runbook.js';
import { openLocalCluster } from '../local/local-target.js';
import { addTargetOptions, checkTargetFlags, CliError, ExitCode, nodeIdOption, type CliIo, type TargetFlags } from '../options.js';
import type { CliDeps } from '../program.js';
import { consoleProgress } from '../progress.js';
import { systemClock } from '../../ports/clock.js';

export interface PlanView {
  readonly clusterId: string;
  readonly mode: RunbookMode;
  readonly outcome: 'plan' | 'refused';
  readonly plan?: RunbookPlan;
  readonly refusal?: PlanRefusal;
  readonly candidates: readonly CandidateAssessment[];
  /** AWS: the dry-run execution. */
  readonly execution?: { readonly executionArn: string; readonly consoleUrl: string };
}

/** The dry run's final state as a plan or a refusal. */
export function planViewOf(clusterId: string, mode: RunbookMode, state: RunbookState, execution?: PlanView['execution']): PlanView {
  if (state.plan) return { clusterId, mode, outcome: 'plan', plan: state.plan, candidates: state.plan.candidates, ...(execution ? { execution } : {}) };
  if (state.refusal) return { clusterId, mode, outcome: 'refused', refusal: state.refusal, candidates: state.candidates ?? [], ...(execution ? { execution } : {}) };
  throw new CliError(`the dry run ended without a plan or a refusal (outcome ${state.outcome ?? 'none'}): ${state.error ? `${state.error.Error}: ${state.error.Cause}` : 'no error given'}`, ExitCode.Failed);
}

const CANDIDATE_COLUMNS = (chosen: string | undefined): readonly Column<CandidateAssessment>[] => [
  { header: 'replica', value: (c) => (c.nodeId === chosen ? `${c.nodeId} *` : c.nodeId) },
  { header: 'eligible', value: (c) => (c.eligible ? 'yes' : 'no') },
  { header: 'lag guard', value: (c) => (c.withinLagGuard ? 'within' : 'OVER') },
  { header: 'timeline', value: (c) => c.timelineId, align: 'right' },
  { header: 'replay LSN', value: (c) => c.replayLsn },
  { header: 'receive LSN', value: (c) => c.receiveLsn },
  { header: 'lag bytes', value: (c) => c.lagBytes, align: 'right' },
  { header: 'priority', value: (c) => c.priority, align: 'right' },
  { header: 'why', value: (c) => c.reasons.join('; ') },
];

export function renderPlanView(view: PlanView): string {
  const lines: string[] = [];
  if (view.outcome === 'refused' && view.refusal) {
    lines.push(`${view.mode} of ${view.clusterId}: REFUSED (${view.refusal.code})`, `  ${view.refusal.reason}`);
  } else if (view.plan) {
    const p = view.plan;
    lines.push(
      `${p.mode} of ${view.clusterId}: promote ${p.candidateId}, fence ${p.oldPrimaryId}`,
      '',
      renderKeyValues({
        'old primary': p.oldPrimaryId,
        candidate: p.candidateId,
        'reference position': p.referenceLsn === null ? 'unknown' : `${p.referenceLsn} (${p.referenceSource === 'primary' ? "the primary's current LSN" : 'highest position a replica received'})`,
        'candidate lag': p.lagBytes === null ? 'unknown' : `${formatBytes(p.lagBytes)} (guard ${formatBytes(p.maxLagBytes)})`,
        'forced past lag guard': p.forced ? 'YES' : 'no',
        'planned fork point': describeForkPoint(p.plannedForkPoint),
        'rebuilt afterwards': p.rebuildReplicaIds.join(', ') || 'none',
        'planned at': p.plannedAt,
      }),
      '',
      `steps: ${p.steps.map((s) => STEP_LABELS[s]).join(' → ')}`,
    );
    if (p.risks.length > 0) lines.push('', 'risks you accept by running it:', ...p.risks.map((r) => `  - ${r}`));
  }
  if (view.candidates.length > 0) lines.push('', renderTable(CANDIDATE_COLUMNS(view.plan?.candidateId), view.candidates));
  if (view.execution) lines.push('', `dry-run execution: ${view.execution.consoleUrl}`);
  return lines.join('\n');
}

export function exitCodeOfRunbookError(name: string | undefined): number {
  if (name === 'RunbookRefused') return ExitCode.Refused;
  if (name === 'RunbookInvalidInput') return ExitCode.Usage;
  return ExitCode.Failed;
}

interface PlanFlags extends TargetFlags {
  readonly mode: RunbookMode;
  readonly candidate?: string;
  readonly force?: boolean;
  readonly json?: boolean;
}

export function registerPlanCommand(program: Command, io: CliIo, deps: CliDeps): Command {
  const command = program
    .command('plan')
    .description('what a failover or switchover would do now and why, or why it would be refused (the runbook\'s dry run: nothing is changed)')
    .addOption(new Option('--mode <mode>', 'failover (primary lost) or switchover (planned, primary healthy)').choices(['failover', 'switchover']).default('failover'))
    .option('--candidate <id>', 'plan the promotion of this replica instead of the planner\'s choice', nodeIdOption('--candidate'))
    .option('--force', 'plan past the lag guard (only the lag guard)')
    .option('--json', 'print the plan as JSON');
  addTargetOptions(command, { workers: false, stateMachine: true });
  return command.action(async (flags: PlanFlags) => {
    const view = await dryRun(flags, io, deps);
    io.stdout.write(flags.json ? `${JSON.stringify(view, null, 2)}\n` : `${renderPlanView(view)}\n`);
    if (view.outcome === 'refused') throw new CliError(`the runbook would refuse: ${view.refusal!.reason}`, ExitCode.Refused);
  });
}

async function dryRun(flags: PlanFlags, io: CliIo, deps: CliDeps): Promise<PlanView> {
  const input = { mode: flags.mode, dryRun: true, ...(flags.candidate ? { candidate: flags.candidate } : {}), ...(flags.force ? { force: true } : {}) };
  const local = checkTargetFlags(flags) === 'local';
  // Injected clocks are for AWS polling in tests; local steps run in real time.
  const clock = local ? systemClock : deps.clock;
  const progress = consoleProgress((line) => io.stderr.write(`${line}\n`), () => clock.now());
  if (local) {
    const opened = openLocalCluster(flags.local!, io.cwd);
    checkLocalCandidate(opened.cluster, flags.candidate);
    const result = await runLocalRunbook({ ...opened, workers: [], input, progress, notifier: { notify: async () => undefined } });
    if (result.outcome === 'failed') throw new CliError(`dry run failed: ${result.error?.message ?? 'unknown error'}`, exitCodeOfRunbookError(result.error?.name));
    return planViewOf(opened.cluster.clusterId, flags.mode, result.state);
  }
  const target = new AwsTarget(flags, io.env);
  await checkAwsCandidate(target, flags.candidate, (line) => io.stderr.write(`warning: ${line}\n`));
  const outcome = await runAwsRunbook({ target, input, progress, clock: deps.clock, pollMs: deps.awsPollMs });
  if (outcome.status !== 'SUCCEEDED') {
    throw new CliError(`dry-run execution ${outcome.status}: ${[outcome.error, outcome.cause].filter(Boolean).join(': ') || 'no error given'} (${outcome.consoleUrl})`, exitCodeOfRunbookError(outcome.error));
  }
  return planViewOf(outcome.clusterId, flags.mode, outcome.output as RunbookState, { executionArn: outcome.executionArn, consoleUrl: outcome.consoleUrl });
}
