import { renderTable, type Column } from '../core/format-table.js';
import { lsnDiff, type Lsn } from '../core/lsn.js';
import type { DatabaseProbe, NodeProbe } from '../ports/database-probe.js';
import type { LocalCluster, LocalNodeInfo } from './local-cluster.js';

/** One row of `npm run cluster -- status`. */
export interface NodeStatus {
  readonly node: string;
  /** 'primary' | 'replica' from the node itself; 'stopped' or 'unreachable' otherwise. */
  readonly role: string;
  readonly port: number;
  readonly pid: number | null;
  readonly writer: boolean;
  readonly fenced: boolean;
  readonly timeline: number | null;
  readonly currentLsn: Lsn | null;
  readonly receiveLsn: Lsn | null;
  readonly replayLsn: Lsn | null;
  /** Bytes the replica's replay is behind the acting primary's current LSN. */
  readonly lagBytes: number | null;
  readonly paused: boolean | null;
  readonly error: string | null;
}

export interface ClusterStatus {
  readonly clusterId: string;
  readonly baseDir: string;
  readonly primaryId: string;
  readonly writerId: string;
  readonly writerFile: string;
  readonly nodes: readonly NodeStatus[];
}

export async function collectStatus(cluster: LocalCluster, probe: DatabaseProbe): Promise<ClusterStatus> {
  const infos = cluster.nodes();
  const probes = await Promise.all(infos.map((n) => (n.pid === null ? Promise.resolve(undefined) : probe.probe(n.id))));
  const primary = probes.find((p) => p?.reachable && !p.inRecovery && p.nodeId === cluster.primaryId());
  const primaryLsn = primary?.reachable ? primary.currentLsn : null;
  return {
    clusterId: cluster.clusterId,
    baseDir: cluster.baseDir,
    primaryId: cluster.primaryId(),
    writerId: cluster.writerId(),
    writerFile: cluster.writerFile,
    nodes: infos.map((info, i) => nodeStatus(info, probes[i], primaryLsn, cluster.writerId())),
  };
}

function nodeStatus(info: LocalNodeInfo, probe: NodeProbe | undefined, primaryLsn: Lsn | null, writerId: string): NodeStatus {
  const base = { node: info.id, port: info.port, pid: info.pid, writer: info.id === writerId, fenced: info.fenced };
  if (!probe || !probe.reachable) {
    return {
      ...base,
      role: probe ? 'unreachable' : 'stopped',
      timeline: null,
      currentLsn: null,
      receiveLsn: null,
      replayLsn: null,
      lagBytes: null,
      paused: null,
      error: probe && !probe.reachable ? probe.error : null,
    };
  }
  return {
    ...base,
    role: probe.inRecovery ? 'replica' : 'primary',
    timeline: probe.timelineId,
    currentLsn: probe.currentLsn,
    receiveLsn: probe.receiveLsn,
    replayLsn: probe.replayLsn,
    lagBytes: probe.inRecovery && primaryLsn && probe.replayLsn ? Math.max(0, lsnDiff(primaryLsn, probe.replayLsn)) : null,
    paused: probe.inRecovery ? probe.replayPaused : null,
    error: null,
  };
}

const COLUMNS: readonly Column<NodeStatus>[] = [
  { header: 'node', value: (r) => (r.writer ? `${r.node} *` : r.node) },
  { header: 'role', value: (r) => (r.fenced ? `${r.role} (fenced)` : r.role) },
  { header: 'port', value: (r) => r.port, align: 'right' },
  { header: 'pid', value: (r) => r.pid, align: 'right' },
  { header: 'timeline', value: (r) => r.timeline, align: 'right' },
  { header: 'current LSN', value: (r) => r.currentLsn },
  { header: 'receive LSN', value: (r) => r.receiveLsn },
  { header: 'replay LSN', value: (r) => r.replayLsn },
  { header: 'lag bytes', value: (r) => r.lagBytes, align: 'right' },
  { header: 'paused', value: (r) => (r.paused === null ? null : r.paused ? 'yes' : 'no') },
];

/** The human format: the topology table, then errors and where the writer file is. */
export function renderStatus(status: ClusterStatus): string {
  const errors = status.nodes.filter((n) => n.error).map((n) => `${n.node}: ${n.error}`);
  return [
    `cluster ${status.clusterId} in ${status.baseDir}`,
    '',
    renderTable(COLUMNS, status.nodes),
    '',
    `* writer (${status.writerFile})`,
    ...errors,
  ].join('\n');
}
