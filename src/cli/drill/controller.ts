/**
 * Who runs the drill's runbooks: this process (as the CLI's `failover --local` does), or a child process the
 * drill can SIGKILL mid-step and start again (controller-crash). Both use the same ports over the same lock and
 * journal directory, so a run started after another resumes from its journal like an operator's re-run.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { runRunbook, type RunbookConfig, type RunbookEvent, type RunbookInput, type RunbookState } from '../../core/runbook/index.js';
import type { LocalCluster } from '../../local/local-cluster.js';
import { createLocalRunbookPorts } from '../../local/local-runbook-ports.js';
import { LocalWorkerControl, type LocalWorker } from '../../local/local-worker-control.js';
import type { ClusterControl } from '../../ports/cluster-control.js';
import type { Notifier } from '../../ports/notifier.js';

export type RoundOutcome = 'succeeded' | 'failed' | 'not-confirmed' | 'dry-run' | 'crashed';

export interface ControllerResult {
  readonly outcome: RoundOutcome;
  /** The runbook's final state; null when the process running it was killed (see the journal instead). */
  readonly state: RunbookState | null;
  readonly error?: { readonly name: string; readonly message: string };
}

/** One runbook execution the drill asks for. */
export interface RunbookRequest {
  readonly input: RunbookInput;
  /** Nodes the planner must not promote in this run. */
  readonly noFailover?: readonly string[];
  /** false: the controller cannot stop a node that does not answer (its host is not the controller's, as on AWS). @default true */
  readonly controllerOwnsNodes?: boolean;
}

export interface ControllerOptions {
  /** The cluster as the controller reaches it (possibly through the network's controller proxies). */
  readonly cluster: LocalCluster;
  readonly workers: readonly LocalWorker[];
  /** Lock and journal: shared by every run of the drill. */
  readonly stateDir: string;
  readonly notifier: Notifier;
  readonly config: RunbookConfig;
  /** Called after the runbook repointed the writer (the network republishes the workers' writer file). */
  readonly afterRepoint?: () => void;
}

export interface DrillController {
  run(request: RunbookRequest, onEvent: (event: RunbookEvent) => void): Promise<ControllerResult>;
  /** SIGKILL the process running the current runbook; only a child-process controller can. */
  crash(): boolean;
  /** Kills what runbooks left running (drains of a failed run). */
  close(): void;
}

export function inProcessController(options: ControllerOptions): DrillController {
  const drainers: LocalWorkerControl[] = [];
  return {
    async run(request, onEvent) {
      const ports = createLocalRunbookPorts({
        cluster: options.cluster,
        workers: options.workers,
        stateDir: options.stateDir,
        noFailover: request.noFailover,
        killUnreachable: request.controllerOwnsNodes,
        notifier: options.notifier,
      });
      if (ports.workers instanceof LocalWorkerControl) drainers.push(ports.workers);
      const cluster = options.afterRepoint ? afterRepoint(ports.cluster, options.afterRepoint) : ports.cluster;
      const result = await runRunbook(request.input, { ...ports, cluster }, { clusterId: options.cluster.clusterId, config: options.config, onEvent });
      return { outcome: result.outcome, state: result.state, ...(result.error ? { error: result.error } : {}) };
    },
    crash: () => false,
    close: () => drainers.forEach((d) => d.stopAll()),
  };
}

/** What the child process (runbook-process.ts) gets in DRILL_RUNBOOK_SPEC; the request comes later, over IPC. */
export interface RunbookProcessSpec {
  readonly clusterDir: string;
  readonly workers: readonly LocalWorker[];
  readonly stateDir: string;
  readonly config: RunbookConfig;
}

export type RunbookProcessCommand = { readonly type: 'run'; readonly request: RunbookRequest };

export type RunbookProcessMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'event'; readonly event: RunbookEvent }
  | { readonly type: 'notification'; readonly notification: Parameters<Notifier['notify']>[0] }
  | { readonly type: 'result'; readonly result: ControllerResult };

const RUNBOOK_PROCESS = path.join(__dirname, 'runbook-process.ts');

/**
 * Each run in its own child process over the same cluster directory, lock and journal. A process is started
 * ahead of each run and waits, like a controller service that is up before the failure (its start-up is not
 * part of the recovery time); it reads the journal only when it runs. The drill's own LocalCluster re-reads
 * the cluster state after each run (the child changed it).
 */
export function childProcessController(options: ControllerOptions): DrillController {
  if (options.afterRepoint) throw new Error('a child-process controller cannot republish the workers\' writer file: run it without the drill network');
  const spec: RunbookProcessSpec = { clusterDir: options.cluster.baseDir, workers: options.workers, stateDir: options.stateDir, config: options.config };
  const start = () => {
    const child = fork(RUNBOOK_PROCESS, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, DRILL_RUNBOOK_SPEC: JSON.stringify(spec) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const ready = new Promise<void>((resolve, reject) => {
      child.on('message', (m: RunbookProcessMessage) => (m.type === 'ready' ? resolve() : undefined));
      child.once('exit', (code, signal) => reject(new Error(`the runbook process exited with ${code ?? signal} before it was ready`)));
    });
    ready.catch(() => undefined);
    return { child, ready };
  };
  let spare = start();
  let current: ChildProcess | null = null;
  return {
    async run(request, onEvent) {
      const { child, ready } = spare;
      spare = start(); // the next run's process starts now: ready when this one is killed
      await ready;
      current = child;
      const result = new Promise<ControllerResult>((resolve) => {
        let reported: ControllerResult | undefined;
        child.on('message', (message: RunbookProcessMessage) => {
          if (message.type === 'event') onEvent(message.event);
          if (message.type === 'notification') void options.notifier.notify(message.notification);
          if (message.type === 'result') reported = message.result;
        });
        child.once('exit', (code, signal) => {
          current = null;
          options.cluster.refresh();
          if (reported) resolve(reported);
          else if (signal === 'SIGKILL') resolve({ outcome: 'crashed', state: null, error: { name: 'ControllerKilled', message: 'the process running the runbook was killed (SIGKILL)' } });
          else resolve({ outcome: 'failed', state: null, error: { name: 'ControllerExited', message: `the runbook process exited with ${code ?? signal} before reporting a result` } });
        });
      });
      const command: RunbookProcessCommand = { type: 'run', request };
      child.send(command);
      return result;
    },
    crash() {
      if (current === null || current.exitCode !== null) return false;
      return current.kill('SIGKILL');
    },
    close() {
      for (const child of [current, spare.child]) if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** The cluster control with a hook after every repoint of the writer. */
function afterRepoint(control: ClusterControl, hook: () => void): ClusterControl {
  return new Proxy(control, {
    get(target, property, receiver) {
      if (property === 'repointWriter') {
        return async (nodeId: string) => {
          await target.repointWriter(nodeId);
          hook();
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
