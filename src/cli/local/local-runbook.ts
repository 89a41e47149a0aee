/**
 * Running the runbook locally from the CLI: the same runner and steps the drill uses (runRunbook with
 * createLocalRunbookPorts), with its lock and journal next to the cluster so `plan`, `failover` and a re-run
 * after a crash all see the same ones.
 */
import { runRunbook, STEP_LABELS, type RunbookEvent, type RunbookInput, type RunbookResult } from '../../core/runbook/index.js';
import type { LocalCluster } from '../../local/local-cluster.js';
import { createLocalRunbookPorts } from '../../local/local-runbook-ports.js';
import type { LocalWorker } from '../../local/local-worker-control.js';
import type { Notifier } from '../../ports/notifier.js';
import { CliError, ExitCode } from '../options.js';
import type { Progress } from '../progress.js';

/** An unknown candidate (or the writer itself) is a usage error: said before anything runs. */
export function checkLocalCandidate(cluster: LocalCluster, candidate: string | undefined): void {
  if (candidate === undefined) return;
  const ids = cluster.nodes().map((n) => n.id);
  const writer = cluster.writerId();
  if (!ids.includes(candidate)) {
    throw new CliError(`--candidate: '${candidate}' is not a node of local cluster ${cluster.clusterId} (nodes: ${ids.join(', ')})`, ExitCode.Usage);
  }
  if (candidate === writer) throw new CliError(`--candidate: '${candidate}' is the writer already; choose one of the replicas (${ids.filter((i) => i !== writer).join(', ')})`);
}

/** Runbook events as live progress lines (the figures each step reports, or its message). */
export function runbookProgress(progress: Progress): (event: RunbookEvent) => void {
  return (event) => {
    const figures = Object.entries(event.figures)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const detail = [figures, event.phase === 'warning' || event.phase === 'failed' ? event.message : undefined].filter(Boolean).join(' — ');
    progress.event(event.phase === 'warning' ? 'info' : event.phase, STEP_LABELS[event.step], detail || undefined);
  };
}

export interface LocalRunbookOptions {
  readonly cluster: LocalCluster;
  readonly controllerDir: string;
  readonly workers: readonly LocalWorker[];
  readonly input: RunbookInput;
  readonly progress: Progress;
  /** Where runbook notifications go (locally there is no Slack). */
  readonly notifier: Notifier;
}

export function runLocalRunbook(options: LocalRunbookOptions): Promise<RunbookResult> {
  const ports = createLocalRunbookPorts({
    cluster: options.cluster,
    workers: options.workers,
    stateDir: options.controllerDir,
    notifier: options.notifier,
  });
  return runRunbook(options.input, ports, { clusterId: options.cluster.clusterId, onEvent: runbookProgress(options.progress) });
}
