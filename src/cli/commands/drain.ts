/**
 * `rds-failover drain`: the runbook's drain step alone, on every worker: each re-sends the rows it synced past the
 * fork point (or within a window) plus everything pending to the current writer. Idempotent, so safe to re-run.
 * AWS: the stack's drain document by SSM Run Command on the tagged workers (the runbook's SsmWorkerControl);
 * local: the agent CLI per buffer.
 */
import type { Command } from 'commander';
import { SsmWorkerControl } from '../../aws/ssm-worker-control.js';
import { formatDurationMs } from '../../core/duration.js';
import { renderTable, type Column } from '../../core/format-table.js';
import { AWS_RUNBOOK_CONFIG, LOCAL_RUNBOOK_CONFIG } from '../../core/runbook/index.js';
import { LocalWorkerControl } from '../../local/local-worker-control.js';
import { systemClock, type Clock } from '../../ports/clock.js';
import type { DrainRequest, DrainSummary, WorkerControl } from '../../ports/worker-control.js';
import { AwsTarget } from '../aws/aws-target.js';
import { localWorkers, openLocalCluster, requireAgentConfig } from '../local/local-target.js';
import {
  addTargetOptions,
  checkTargetFlags,
  CliError,
  durationOption,
  ExitCode,
  lsnOption,
  positiveIntegerOption,
  type CliIo,
  type TargetFlags,
} from '../options.js';
import type { CliDeps } from '../program.js';
import { consoleProgress, type Progress } from '../progress.js';
import { ResourceTag } from '../../core/resource-tags.js';

/** The tag lib/buffered-workers.ts puts on every worker (WORKER_TAGS.cluster); its value is the cluster id. */
export const WORKER_CLUSTER_TAG = ResourceTag.Cluster;

export interface WorkerDrainResult {
  readonly workerId: string;
  readonly state: 'done' | 'failed' | 'timed-out';
  readonly summary: DrainSummary | null;
  readonly error: string | null;
  readonly ms: number;
}

export interface DrainFlagsInput {
  readonly forkTimeline?: number;
  readonly forkLsn?: string;
  /** Milliseconds. */
  readonly window?: number;
}

/** Exactly one of: a fork point (both flags), or a window. */
export function drainRequestOf(flags: DrainFlagsInput): DrainRequest {
  const fork = flags.forkTimeline !== undefined || flags.forkLsn !== undefined;
  if (fork && flags.window !== undefined) throw new CliError('give either --fork-timeline with --fork-lsn, or --window, not both');
  if (flags.forkTimeline !== undefined && flags.forkLsn === undefined) throw new CliError('--fork-timeline needs --fork-lsn <X/Y> (the fork point is a timeline and an LSN)');
  if (flags.forkLsn !== undefined && flags.forkTimeline === undefined) throw new CliError('--fork-lsn needs --fork-timeline <n> (the fork point is a timeline and an LSN)');
  if (flags.forkTimeline !== undefined) return { forkPoint: { timelineId: flags.forkTimeline, lsn: flags.forkLsn! } };
  if (flags.window === undefined) {
    throw new CliError(
      'say what to re-send: --fork-timeline <n> --fork-lsn <X/Y> (the fork point the failover reported), or --window <duration> (everything synced that recently, e.g. 15m)',
    );
  }
  const seconds = Math.ceil(flags.window / 1000);
  if (seconds < 1) throw new CliError(`--window: must be at least 1s, got ${flags.window}ms`);
  return { windowSeconds: seconds };
}

/** Starts the drain on every worker, then polls each until it is done, failed, or the timeout passes. */
export async function drainAll(
  control: WorkerControl,
  request: DrainRequest,
  options: { readonly progress: Progress; readonly clock: Clock; readonly pollMs: number; readonly timeoutMs: number },
): Promise<WorkerDrainResult[]> {
  const { progress, clock } = options;
  const workers = await control.listWorkers();
  const began = clock.now();
  const running = new Map<string, string>();
  const results = new Map<string, WorkerDrainResult>();
  for (const w of workers) {
    try {
      running.set(w.id, await control.startDrain(w.id, request));
      progress.event('start', `drain ${w.id}`);
    } catch (error) {
      results.set(w.id, { workerId: w.id, state: 'failed', summary: null, error: `could not start: ${(error as Error).message}`, ms: 0 });
      progress.event('failed', `drain ${w.id}`, (error as Error).message);
    }
  }
  while (running.size > 0) {
    for (const [workerId, handle] of [...running]) {
      const status = await control.drainStatus(workerId, handle);
      if (status.state === 'pending') continue;
      running.delete(workerId);
      const ms = clock.now() - began;
      if (status.state === 'done') {
        results.set(workerId, { workerId, state: 'done', summary: status.summary, error: null, ms });
        progress.event('done', `drain ${workerId}`, `re-sent ${status.summary.resent}, inserted ${status.summary.inserted}, pending ${status.summary.remainingPending}`);
      } else {
        results.set(workerId, { workerId, state: 'failed', summary: null, error: status.error, ms });
        progress.event('failed', `drain ${workerId}`, status.error);
      }
    }
    if (running.size === 0) break;
    if (clock.now() - began > options.timeoutMs) {
      for (const workerId of running.keys()) {
        results.set(workerId, { workerId, state: 'timed-out', summary: null, error: `no result after ${formatDurationMs(options.timeoutMs)}`, ms: clock.now() - began });
        progress.event('failed', `drain ${workerId}`, 'timed out');
      }
      break;
    }
    await clock.sleep(options.pollMs);
  }
  return workers.map((w) => results.get(w.id)!);
}

const COLUMNS: readonly Column<WorkerDrainResult>[] = [
  { header: 'worker', value: (r) => r.workerId },
  { header: 'drain', value: (r) => r.state },
  { header: 'examined', value: (r) => r.summary?.examined, align: 'right' },
  { header: 're-sent', value: (r) => r.summary?.resent, align: 'right' },
  { header: 'inserted', value: (r) => r.summary?.inserted, align: 'right' },
  { header: 'already there', value: (r) => r.summary?.alreadyPresent, align: 'right' },
  { header: 'still pending', value: (r) => r.summary?.remainingPending, align: 'right' },
  { header: 'refused', value: (r) => r.summary?.rejected, align: 'right' },
  { header: 'took', value: (r) => formatDurationMs(r.ms), align: 'right' },
  { header: 'error', value: (r) => r.error },
];

export function renderDrainResults(request: DrainRequest, results: readonly WorkerDrainResult[]): string {
  const what = request.forkPoint ? `rows synced on timeline ${request.forkPoint.timelineId} above ${request.forkPoint.lsn}` : `rows synced in the last ${request.windowSeconds}s`;
  return [`drain: re-send ${what}, plus every pending row`, '', renderTable(COLUMNS, results)].join('\n');
}

interface DrainFlags extends TargetFlags, DrainFlagsInput {
  readonly timeout?: number;
  readonly json?: boolean;
}

export function registerDrainCommand(program: Command, io: CliIo, deps: CliDeps): Command {
  const command = program
    .command('drain')
    .description('run (or re-run) the runbook\'s drain step alone on every worker: re-send buffered rows past the fork point (or within a window) to the current writer')
    .option('--fork-timeline <n>', 'timeline of the fork point (from the failover outcome)', positiveIntegerOption('--fork-timeline'))
    .option('--fork-lsn <lsn>', 'LSN of the fork point, e.g. 0/3000060', lsnOption('--fork-lsn'))
    .option('--window <duration>', 'no fork point known: re-send everything synced within this window, e.g. 15m', durationOption('--window'))
    .option('--timeout <duration>', 'give up waiting for a worker after this long (default: the runbook\'s drain timeout, 15m in AWS, 60s locally)', durationOption('--timeout'))
    .option('--json', 'print the per-worker summaries as JSON');
  addTargetOptions(command, { workers: true, stateMachine: false });
  return command.action(async (flags: DrainFlags) => {
    const request = drainRequestOf(flags);
    const local = checkTargetFlags(flags) === 'local';
    // Injected clocks are for AWS polling in tests; local drains run in real time.
    const clock = local ? systemClock : deps.clock;
    const progress = consoleProgress((line) => io.stderr.write(`${line}\n`), () => clock.now());
    let control: WorkerControl;
    let timing: { pollMs: number; timeoutMs: number };
    if (local) {
      const workers = requireAgentConfig(localWorkers(flags.buffer, flags.agentConfig, io.cwd), 'drain');
      if (workers.length === 0) throw new CliError('drain --local: give the workers\' buffers with --buffer <files...> and their --agent-config');
      openLocalCluster(flags.local!, io.cwd); // the writer the agents drain into must exist
      control = new LocalWorkerControl(workers);
      timing = { pollMs: LOCAL_RUNBOOK_CONFIG.pollIntervalMs.drain * 5, timeoutMs: LOCAL_RUNBOOK_CONFIG.timeoutMs.drain };
    } else {
      const target = new AwsTarget(flags, io.env);
      control = new SsmWorkerControl({
        ssm: target.ssm(),
        tagKey: WORKER_CLUSTER_TAG,
        tagValue: await target.clusterId(),
        documentName: await target.drainDocumentName(),
      });
      timing = { pollMs: deps.awsPollMs, timeoutMs: AWS_RUNBOOK_CONFIG.timeoutMs.drain };
    }
    const results = await drainAll(control, request, { progress, clock, pollMs: timing.pollMs, timeoutMs: flags.timeout ?? timing.timeoutMs });
    if (control instanceof LocalWorkerControl) control.stopAll();
    io.stdout.write(flags.json ? `${JSON.stringify({ request, workers: results }, null, 2)}\n` : `${renderDrainResults(request, results)}\n`);
    if (results.length === 0) throw new CliError('no workers found to drain', ExitCode.Failed);
    const bad = results.filter((r) => r.state !== 'done');
    if (bad.length > 0) throw new CliError(`drain did not complete on ${bad.map((r) => `${r.workerId} (${r.state})`).join(', ')}; it is idempotent: re-run it`, ExitCode.Failed);
  });
}
