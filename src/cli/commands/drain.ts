/**
 * `rds-failover drain`: the runbook's drain step alone, on every worker: each converges on the writer's lineage and
 * re-sends the rows it synced outside the newest epoch's history plus everything pending. Idempotent, so safe to re-run.
 * AWS: the stack's drain document by SSM Run Command on the tagged workers (the runbook's SsmWorkerControl);
 * local: the agent CLI per buffer.
 */
import type { Command } from 'commander';
import { SsmWorkerControl } from '../../aws/ssm-worker-control.js';
import { formatDurationMs } from '../../core/duration.js';
import { isEpochId } from '../../core/lineage.js';
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
  readonly epoch?: string;
}

/** The promotion's epoch, when given: each worker's writer must be on it (or a newer one). */
export function drainRequestOf(flags: DrainFlagsInput): DrainRequest {
  if (flags.epoch === undefined) return {};
  if (!isEpochId(flags.epoch)) throw new CliError(`--epoch: expected the epoch's UUID as the failover reported it (lowercase), got '${flags.epoch}'`);
  return { epochId: flags.epoch };
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
  { header: 'epoch', value: (r) => r.summary?.epochId.slice(0, 8) },
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
  const into = request.epochId ? `epoch ${request.epochId}` : "the writer's epoch";
  return [`drain: converge on ${into}; re-send rows synced outside its history, plus every pending row`, '', renderTable(COLUMNS, results)].join('\n');
}

interface DrainFlags extends TargetFlags, DrainFlagsInput {
  readonly timeout?: number;
  readonly json?: boolean;
}

export function registerDrainCommand(program: Command, io: CliIo, deps: CliDeps): Command {
  const command = program
    .command('drain')
    .description("run (or re-run) the runbook's drain step alone on every worker: converge on the writer's lineage, re-send buffered rows outside its history")
    .option('--epoch <uuid>', "the promotion's epoch (from the failover outcome): every worker's writer must be on it or a newer one")
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
