/**
 * `rds-failover failover` and `switchover`: confirm, run the runbook (AWS: start the Step Functions execution and
 * follow it; local: the same steps in this process), show progress live, then the outcome and what to do next.
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { formatDurationMs } from '../../core/duration.js';
import { renderKeyValues, renderTable, type Column } from '../../core/format-table.js';
import { STEP_LABELS, STEP_NAMES, describeForkPoint, recoveryAdvice, type DrainProgress, type RunbookMode, type RunbookState } from '../../core/runbook/index.js';
import { checkAwsCandidate, runAwsRunbook } from '../aws/aws-runbook.js';
import { AwsTarget } from '../aws/aws-target.js';
import { checkLocalCandidate, runLocalRunbook } from '../local/local-runbook.js';
import { localWorkers, openLocalCluster, requireAgentConfig } from '../local/local-target.js';
import { addTargetOptions, checkTargetFlags, CliError, ExitCode, nodeIdOption, type CliIo, type TargetFlags } from '../options.js';
import type { CliDeps } from '../program.js';
import { consoleProgress } from '../progress.js';
import { systemClock } from '../../ports/clock.js';
import { exitCodeOfRunbookError } from './plan.js';

export interface StepTime {
  readonly step: string;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly ms: number | null;
}

export interface OutcomeView {
  readonly clusterId: string;
  readonly mode: RunbookMode;
  /** succeeded | failed | not-confirmed (local runner), or the execution status in AWS (SUCCEEDED, FAILED, ABORTED...). */
  readonly outcome: string;
  readonly ok: boolean;
  readonly oldPrimary: string | null;
  readonly newPrimary: string | null;
  readonly forkPoint: string | null;
  readonly steps: readonly StepTime[];
  readonly drains: readonly DrainProgress[];
  readonly warnings: readonly string[];
  readonly error: { readonly name: string; readonly message: string } | null;
  /** What a failure left behind and how to recover (the runbook's own advice). */
  readonly recovery: string | null;
  readonly execution?: { readonly executionArn: string; readonly consoleUrl: string };
  readonly next: string | null;
}

export function outcomeViewOf(args: {
  clusterId: string;
  mode: RunbookMode;
  outcome: string;
  ok: boolean;
  state: RunbookState | null;
  error: { name: string; message: string } | null;
  execution?: OutcomeView['execution'];
  reconcileHint: string;
}): OutcomeView {
  const s = args.state;
  const steps: StepTime[] = STEP_NAMES.flatMap((name) => {
    const t = s?.steps?.[name];
    if (!t?.startedAt) return [];
    const ms = t.finishedAt ? Date.parse(t.finishedAt) - Date.parse(t.startedAt) : null;
    return [{ step: STEP_LABELS[name], startedAt: t.startedAt, finishedAt: t.finishedAt ?? null, ms }];
  });
  return {
    clusterId: args.clusterId,
    mode: args.mode,
    outcome: args.outcome,
    ok: args.ok,
    oldPrimary: s?.plan?.oldPrimaryId ?? null,
    newPrimary: s?.plan && s.promotion ? s.plan.candidateId : null,
    forkPoint: s?.forkPoint === undefined ? null : describeForkPoint(s.forkPoint),
    steps,
    drains: s?.drains ?? [],
    warnings: s?.warnings ?? [],
    error: args.error,
    recovery: !args.ok && s ? recoveryAdvice(s) : null,
    ...(args.execution ? { execution: args.execution } : {}),
    next: args.ok ? args.reconcileHint : null,
  };
}

const STEP_COLUMNS: readonly Column<StepTime>[] = [
  { header: 'step', value: (s) => s.step },
  { header: 'started', value: (s) => s.startedAt },
  { header: 'took', value: (s) => (s.ms === null ? 'unfinished' : formatDurationMs(s.ms)), align: 'right' },
];

const DRAIN_COLUMNS: readonly Column<DrainProgress>[] = [
  { header: 'worker', value: (d) => d.workerId },
  { header: 'drain', value: (d) => d.status },
  { header: 'attempts', value: (d) => d.attempts, align: 'right' },
  { header: 'examined', value: (d) => d.summary?.examined, align: 'right' },
  { header: 're-sent', value: (d) => d.summary?.resent, align: 'right' },
  { header: 'inserted', value: (d) => d.summary?.inserted, align: 'right' },
  { header: 'already there', value: (d) => d.summary?.alreadyPresent, align: 'right' },
  { header: 'still pending', value: (d) => d.summary?.remainingPending, align: 'right' },
  { header: 'refused', value: (d) => d.summary?.rejected, align: 'right' },
  { header: 'error', value: (d) => d.error },
];

export function renderOutcomeView(view: OutcomeView): string {
  const total = view.steps.length > 0 && view.steps.at(-1)!.finishedAt ? Date.parse(view.steps.at(-1)!.finishedAt!) - Date.parse(view.steps[0]!.startedAt) : null;
  const head = `${view.mode} of ${view.clusterId}: ${view.outcome.toUpperCase()}`;
  const lines = [
    view.ok && view.oldPrimary && view.newPrimary ? `${head}: ${view.oldPrimary} -> ${view.newPrimary}${total === null ? '' : ` in ${formatDurationMs(total)}`}` : head,
    '',
    renderKeyValues({
      'old primary': view.oldPrimary,
      'new primary': view.newPrimary,
      'fork point': view.forkPoint,
      ...(view.execution ? { execution: view.execution.consoleUrl } : {}),
    }),
  ];
  if (view.steps.length > 0) lines.push('', renderTable(STEP_COLUMNS, view.steps));
  if (view.drains.length > 0) lines.push('', renderTable(DRAIN_COLUMNS, view.drains));
  if (view.warnings.length > 0) lines.push('', 'warnings:', ...view.warnings.map((w) => `  - ${w}`));
  if (view.error) lines.push('', `error: ${view.error.name}: ${view.error.message}`);
  if (view.recovery) lines.push(`recovery: ${view.recovery}`);
  if (view.next) lines.push('', `next: ${view.next}`);
  return lines.join('\n');
}

/** Asks for the cluster id back; refuses without a terminal unless --yes. */
export async function confirmOrRefuse(io: CliIo, prompt: string, expected: string, yes: boolean | undefined, command: string): Promise<void> {
  if (yes) return;
  if (!io.interactive) {
    throw new CliError(`${command} changes the cluster and needs confirmation: stdin is not a terminal, so re-run with --yes to confirm non-interactively`, ExitCode.Usage);
  }
  const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: false });
  try {
    const answer = await rl.question(`${prompt}\nType the cluster id (${expected}) to go on, anything else to stop: `);
    if (answer.trim() !== expected) throw new CliError(`not confirmed ('${answer.trim()}' is not ${expected}): nothing was done`, ExitCode.Refused);
  } finally {
    rl.close();
  }
}

interface FailoverFlags extends TargetFlags {
  readonly candidate?: string;
  readonly force?: boolean;
  readonly yes?: boolean;
  readonly json?: boolean;
}

const DESCRIPTIONS: Readonly<Record<RunbookMode, string>> = {
  failover:
    'the primary is lost: fence it, promote the best replica, repoint the writer, drain every worker, verify, rebuild the other replicas (refused while the primary is healthy: use switchover)',
  switchover: 'planned: fence writes on the healthy primary, wait until the candidate replayed everything (zero lag), promote it, repoint, drain, verify, rebuild',
};

export function registerFailoverCommands(program: Command, io: CliIo, deps: CliDeps): void {
  for (const mode of ['failover', 'switchover'] as const) {
    const command = program
      .command(mode)
      .description(DESCRIPTIONS[mode])
      .option('--candidate <id>', "promote this replica instead of the planner's choice", nodeIdOption('--candidate'))
      .option('--force', 'promote past the lag guard (only the lag guard; the plan says what it risks)')
      .option('--yes', 'do not ask for confirmation (needed without a terminal)')
      .option('--json', 'print the outcome as JSON');
    addTargetOptions(command, { workers: true, stateMachine: true });
    command.action(async (flags: FailoverFlags) => {
      const view = await runMode(mode, flags, io, deps);
      io.stdout.write(flags.json ? `${JSON.stringify(view, null, 2)}\n` : `${renderOutcomeView(view)}\n`);
      if (!view.ok) throw new CliError(`${mode} ${view.outcome}${view.error ? `: ${view.error.message}` : ''}`, exitCodeOfRunbookError(view.error?.name));
    });
  }
}

async function runMode(mode: RunbookMode, flags: FailoverFlags, io: CliIo, deps: CliDeps): Promise<OutcomeView> {
  const input = { mode, ...(flags.candidate ? { candidate: flags.candidate } : {}), ...(flags.force ? { force: true } : {}) };
  const local = checkTargetFlags(flags) === 'local';
  // Injected clocks are for AWS polling in tests; local steps run in real time.
  const clock = local ? systemClock : deps.clock;
  const progress = consoleProgress((line) => io.stderr.write(`${line}\n`), () => clock.now());
  const what = `${mode}${flags.candidate ? ` to ${flags.candidate}` : ''}${flags.force ? ' (forced past the lag guard)' : ''}`;

  if (local) {
    const specs = localWorkers(flags.buffer, flags.agentConfig, io.cwd);
    const workers = requireAgentConfig(specs, mode);
    const opened = openLocalCluster(flags.local!, io.cwd);
    checkLocalCandidate(opened.cluster, flags.candidate);
    const clusterId = opened.cluster.clusterId;
    if (workers.length === 0) io.stderr.write('warning: no local workers given (--buffer ... --agent-config ...): the drain step has no buffer to re-send from\n');
    await confirmOrRefuse(io, `About to run a ${what} of local cluster ${clusterId} (writer ${opened.cluster.writerId()}). Preview it with \`rds-failover plan --local\`.`, clusterId, flags.yes, mode);
    const result = await runLocalRunbook({
      ...opened,
      workers,
      input,
      progress,
      // Locally there is no Slack: the progress lines are the notifications.
      notifier: { notify: async () => undefined },
    });
    return outcomeViewOf({
      clusterId,
      mode,
      outcome: result.outcome,
      ok: result.outcome === 'succeeded',
      state: result.state,
      error: result.error ?? null,
      reconcileHint: `rds-failover reconcile --local ${opened.dir} --config <cdk config> (shows the config change; add --write to apply)`,
    });
  }

  const target = new AwsTarget(flags, io.env);
  const [clusterId] = await Promise.all([target.clusterId(), target.stateMachineArn()]);
  await checkAwsCandidate(target, flags.candidate, (line) => io.stderr.write(`warning: ${line}\n`));
  await confirmOrRefuse(io, `About to start a ${what} of ${clusterId} in AWS. Preview it with \`rds-failover plan\`.`, clusterId, flags.yes, mode);
  const interrupted = () => {
    io.stderr.write('\ninterrupted: the execution keeps running in AWS; follow it from the link above\n');
    process.exit(ExitCode.Interrupted);
  };
  process.once('SIGINT', interrupted);
  try {
    const outcome = await runAwsRunbook({ target, input, progress, clock: deps.clock, pollMs: deps.awsPollMs });
    const ok = outcome.status === 'SUCCEEDED' && (outcome.output as RunbookState | null)?.outcome === 'succeeded';
    const state = isRunbookState(outcome.output) ? outcome.output : null;
    const error = outcome.error
      ? { name: outcome.error, message: outcome.cause ?? '' }
      : !ok && state?.error
        ? { name: state.error.Error, message: state.error.Cause }
        : !ok
          ? { name: 'RunbookNotSucceeded', message: `execution ${outcome.status} with outcome ${state?.outcome ?? 'unknown'}` }
          : null;
    return outcomeViewOf({
      clusterId,
      mode,
      outcome: state?.outcome && outcome.status === 'SUCCEEDED' ? state.outcome : outcome.status,
      ok,
      state,
      error,
      execution: { executionArn: outcome.executionArn, consoleUrl: outcome.consoleUrl },
      reconcileHint: `rds-failover reconcile --config config/<env>.json (shows the config change; add --write to apply), then review with npx cdk diff`,
    });
  } finally {
    process.removeListener('SIGINT', interrupted);
  }
}

function isRunbookState(value: unknown): value is RunbookState {
  return typeof value === 'object' && value !== null && typeof (value as RunbookState).executionId === 'string';
}
