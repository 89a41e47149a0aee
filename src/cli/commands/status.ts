/**
 * `rds-failover status`: primary, replicas, lag (seconds and bytes), their state by the monitor's lag policy,
 * and the workers' buffer backlog. One report shape for the local cluster and for AWS.
 */
import type { Command } from 'commander';
import { classifyBacklog } from '../../core/backlog-policy.js';
import { renderTable, type Column } from '../../core/format-table.js';
import { formatBytes, formatSeconds, round } from '../../core/format-units.js';
import type { HealthLevel } from '../../core/health-level.js';
import { DEFAULT_MONITOR_CONFIG, type BacklogThresholds, type LagThresholds } from '../../core/monitor-config.js';
import type { WorkerBacklog } from '../../ports/buffer-backlog-source.js';
import { collectAwsStatus } from '../aws/aws-status.js';
import { AwsTarget } from '../aws/aws-target.js';
import { collectLocalStatus } from '../local/local-status.js';
import { localWorkers, openLocalCluster } from '../local/local-target.js';
import { addTargetOptions, checkTargetFlags, type CliIo, type TargetFlags } from '../options.js';
import type { CliDeps } from '../program.js';

/** A health level, or UNKNOWN when there is no figure to judge (no lag metric published, no probe of the primary). */
export type StatusState = HealthLevel | 'UNKNOWN';

export interface StatusNode {
  readonly id: string;
  /** primary | replica (what the node is), or stopped | unreachable locally. */
  readonly role: string;
  /** The writer endpoint points at this node. */
  readonly writer: boolean;
  readonly endpoint: string | null;
  /** Process or RDS instance status (running, stopped, available, modifying...). */
  readonly status: string;
  readonly timeline: number | null;
  /** pg_current_wal_lsn() on a primary, pg_last_wal_replay_lsn() on a replica (local only: AWS reads metrics). */
  readonly lsn: string | null;
  readonly lagSeconds: number | null;
  readonly lagBytes: number | null;
  readonly state: StatusState;
  readonly detail: string | null;
}

export interface StatusWorker {
  readonly id: string;
  readonly pendingRows: number | null;
  readonly oldestPendingAgeSeconds: number | null;
  /** ISO time of the figures (AWS: newest data point) or of the last successful sync (local). */
  readonly at: string | null;
  /**
   * The epoch the worker last confirmed (it re-sent everything outside that epoch's history), and whether it is the
   * cluster's current epoch; null when unknown. AWS knows only `confirmed` (the agent's WorkerUnconfirmed metric).
   */
  readonly confirmedEpoch?: string | null;
  readonly confirmed?: boolean | null;
  readonly state: StatusState;
  readonly detail: string | null;
}

/** The writer's epoch (src/core/lineage.ts): every worker must be on it and confirm it after a failover. */
export interface StatusEpoch {
  readonly id: string;
  readonly generation: number;
  readonly nodeId: string;
  readonly createdAt: string;
}

export interface StatusReport {
  readonly source: 'local' | 'aws';
  readonly clusterId: string;
  readonly writerId: string;
  /** The one node acting as primary; null when there is none or more than one. */
  readonly primaryId: string | null;
  /** The worst state of the cluster, its replicas and its workers. */
  readonly state: StatusState;
  readonly nodes: readonly StatusNode[];
  readonly workers: readonly StatusWorker[];
  /** Why the workers list is empty, when it is. */
  readonly workersNote?: string;
  /** The writer's current epoch; null when it cannot be read (no lineage, writer down). */
  readonly epoch?: StatusEpoch | null;
  readonly thresholds: { readonly lag: LagThresholds; readonly backlog: BacklogThresholds };
  readonly sampledAt: string;
}

export const STATUS_THRESHOLDS = { lag: DEFAULT_MONITOR_CONFIG.lag, backlog: DEFAULT_MONITOR_CONFIG.backlog } as const;

/** A worker's backlog figures judged by the monitor's backlog policy. */
export function workerStatus(backlog: WorkerBacklog, thresholds: BacklogThresholds, detail: string | null = null): StatusWorker {
  const state = classifyBacklog(backlog, 'OK', thresholds);
  return {
    id: backlog.workerId,
    pendingRows: backlog.pendingRows,
    oldestPendingAgeSeconds: backlog.oldestPendingAgeSeconds === null ? null : round(backlog.oldestPendingAgeSeconds, 1),
    at: backlog.at || null,
    state: state ?? 'UNKNOWN',
    detail,
  };
}

/** Severity order for the overall state: a lost or split primary (CRIT) outranks a node that does not answer. */
const SEVERITY: readonly StatusState[] = ['OK', 'UNKNOWN', 'WARN', 'BROKEN', 'UNREACHABLE', 'CRIT'];

/** The most severe of the given states (OK for none). */
export function worstState(states: readonly StatusState[]): StatusState {
  return states.reduce<StatusState>((worst, s) => (SEVERITY.indexOf(s) > SEVERITY.indexOf(worst) ? s : worst), 'OK');
}

const NODE_COLUMNS: readonly Column<StatusNode>[] = [
  { header: 'node', value: (n) => n.id },
  { header: 'role', value: (n) => n.role },
  { header: 'writer', value: (n) => (n.writer ? '*' : '') },
  { header: 'status', value: (n) => n.status },
  { header: 'endpoint', value: (n) => n.endpoint },
  { header: 'timeline', value: (n) => n.timeline, align: 'right' },
  { header: 'LSN', value: (n) => n.lsn },
  { header: 'lag', value: (n) => (n.lagSeconds === null ? null : formatSeconds(n.lagSeconds)), align: 'right' },
  { header: 'lag bytes', value: (n) => n.lagBytes, align: 'right' },
  { header: 'state', value: (n) => n.state },
  { header: 'detail', value: (n) => n.detail },
];

const WORKER_COLUMNS: readonly Column<StatusWorker>[] = [
  { header: 'worker', value: (w) => w.id },
  { header: 'pending rows', value: (w) => w.pendingRows, align: 'right' },
  { header: 'oldest pending', value: (w) => (w.oldestPendingAgeSeconds === null ? null : formatSeconds(w.oldestPendingAgeSeconds)), align: 'right' },
  { header: 'as of', value: (w) => w.at },
  { header: 'epoch', value: epochColumn },
  { header: 'state', value: (w) => w.state },
  { header: 'detail', value: (w) => w.detail },
];

/** Local: the epoch the worker confirmed; AWS (only the WorkerUnconfirmed metric is known): confirmed or not. */
function epochColumn(w: StatusWorker): string | undefined {
  if (w.confirmedEpoch !== undefined) return w.confirmedEpoch === null ? 'none' : `${w.confirmedEpoch.slice(0, 8)}${w.confirmed ? '' : ' (old)'}`;
  if (w.confirmed === undefined || w.confirmed === null) return undefined;
  return w.confirmed ? 'confirmed' : 'unconfirmed';
}

export function renderStatusReport(report: StatusReport): string {
  const { lag, backlog } = report.thresholds;
  return [
    `cluster ${report.clusterId} (${report.source}): writer ${report.writerId}, primary ${report.primaryId ?? 'NONE'}, state ${report.state}` +
      (report.epoch === undefined ? '' : report.epoch === null ? ', epoch unknown' : `, epoch ${report.epoch.id.slice(0, 8)} (generation ${report.epoch.generation}, ${report.epoch.nodeId})`),
    '',
    renderTable(NODE_COLUMNS, report.nodes),
    '',
    report.workers.length > 0 ? renderTable(WORKER_COLUMNS, report.workers) : `workers: none (${report.workersNote ?? 'no worker reported a backlog'})`,
    '',
    `thresholds: lag WARN at ${formatSeconds(lag.warnSeconds)} or ${formatBytes(lag.warnBytes)}, CRIT at ${formatSeconds(lag.critSeconds)} or ${formatBytes(lag.critBytes)}; ` +
      `backlog WARN at ${formatSeconds(backlog.warnOldestPendingSeconds)} or ${backlog.warnPendingRows} rows, CRIT at ${formatSeconds(backlog.critOldestPendingSeconds)} or ${backlog.critPendingRows} rows`,
    `sampled at ${report.sampledAt}`,
  ].join('\n');
}

interface StatusFlags extends TargetFlags {
  readonly json?: boolean;
}

export function registerStatusCommand(program: Command, io: CliIo, deps: CliDeps): Command {
  const command = program
    .command('status')
    .description("primary, replicas, replication lag (seconds and bytes), each node's state (OK/WARN/CRIT/UNREACHABLE) and the workers' buffer backlog")
    .option('--json', 'print the report as JSON');
  addTargetOptions(command, { workers: true, stateMachine: false });
  return command.action(async (flags: StatusFlags) => {
    const report = await collectStatus(flags, io, () => new Date(deps.clock.now()));
    io.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderStatusReport(report)}\n`);
  });
}

async function collectStatus(flags: StatusFlags, io: CliIo, awsNow: () => Date): Promise<StatusReport> {
  if (checkTargetFlags(flags) === 'local') {
    const workers = localWorkers(flags.buffer, flags.agentConfig, io.cwd);
    const { cluster } = openLocalCluster(flags.local!, io.cwd);
    // Local figures are read now (buffer ages use the real time): keep sampledAt on the same clock.
    return collectLocalStatus(cluster, workers, STATUS_THRESHOLDS, io.cwd);
  }
  return collectAwsStatus(new AwsTarget(flags, io.env), STATUS_THRESHOLDS, awsNow);
}
