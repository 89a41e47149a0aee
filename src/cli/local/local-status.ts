/**
 * `status --local`: every node probed over `pg` (PgDatabaseProbe), lag measured and judged by the monitor's
 * lag policy (measureCluster / classifyReplica), buffers read with the agent's own status.
 */
import { classifyCluster, classifyReplica, measureCluster, type ReplicaLag } from '../../core/lag-policy.js';
import { headOf } from '../../core/lineage.js';
import { PgLineageStore } from '../../pg/lineage.js';
import type { LocalCluster, LocalNodeInfo } from '../../local/local-cluster.js';
import { PgDatabaseProbe } from '../../pg/probe.js';
import type { NodeProbe } from '../../ports/database-probe.js';
import { worstState, workerStatus, type StatusEpoch, type StatusNode, type StatusReport, type StatusWorker } from '../commands/status.js';
import { readBufferStatus, type LocalWorkerSpec } from './local-target.js';

export async function collectLocalStatus(
  cluster: LocalCluster,
  workers: readonly LocalWorkerSpec[],
  thresholds: StatusReport['thresholds'],
  cwd: string,
  now: () => Date = () => new Date(),
): Promise<StatusReport> {
  const sampledAt = now().toISOString();
  const infos = cluster.nodes();
  const probe = new PgDatabaseProbe((id) => cluster.clientConfig(id), { connectTimeoutMs: 1_000 });
  const probes: NodeProbe[] = await Promise.all(
    infos.map((n) => (n.pid === null ? Promise.resolve<NodeProbe>({ nodeId: n.id, sampledAt, reachable: false, error: 'not running' }) : probe.probe(n.id))),
  );
  const view = measureCluster(
    infos.map((n) => ({ id: n.id })),
    probes,
  );
  const writerId = cluster.writerId();
  const nodes = infos.map((info, i) => nodeStatus(info, probes[i]!, view.primaryId, view.replicas.find((r) => r.nodeId === info.id), writerId, thresholds));
  const epoch = view.primaryId === null ? null : await writerEpoch(cluster, view.primaryId);
  const workerRows = await Promise.all(workers.map((w) => workerRow(w, cwd, thresholds, sampledAt, epoch)));
  // A fenced node is the old primary a failover left behind on purpose: listed, but not what the cluster's state is about.
  const counted = nodes.filter((n) => n.role !== 'fenced').map((n) => n.state);
  return {
    source: 'local',
    clusterId: cluster.clusterId,
    writerId,
    primaryId: view.primaryId,
    state: worstState([classifyCluster(view.finding), ...counted, ...workerRows.map((w) => w.state)]),
    nodes,
    workers: workerRows,
    epoch,
    ...(workers.length === 0 ? { workersNote: 'pass the local buffers with --buffer <files...>' } : {}),
    thresholds,
    sampledAt,
  };
}

function nodeStatus(
  info: LocalNodeInfo,
  probe: NodeProbe,
  primaryId: string | null,
  lag: ReplicaLag | undefined,
  writerId: string,
  thresholds: StatusReport['thresholds'],
): StatusNode {
  const base = (role: string) => ({ id: info.id, role, writer: info.id === writerId, endpoint: `127.0.0.1:${info.port}`, status: info.pid === null ? 'stopped' : 'running' });
  if (!probe.reachable) {
    const role = info.fenced ? 'fenced' : info.pid === null ? 'stopped' : 'unreachable';
    const detail = info.fenced ? `old primary, isolated: rebuild it as a replica to use it again (${probe.error})` : probe.error;
    return { ...base(role), timeline: null, lsn: null, lagSeconds: lag?.lagSeconds ?? null, lagBytes: lag?.lagBytes ?? null, state: 'UNREACHABLE', detail };
  }
  if (!probe.inRecovery) {
    const alone = info.id === primaryId;
    return {
      ...base('primary'),
      timeline: probe.timelineId,
      lsn: probe.currentLsn,
      lagSeconds: null,
      lagBytes: null,
      state: alone ? 'OK' : 'CRIT',
      detail: alone ? (probe.acceptsWrites ? null : 'read-only (write-fenced)') : 'more than one node is out of recovery (split brain)',
    };
  }
  const state = lag ? (classifyReplica(lag, 'OK', thresholds.lag) ?? 'UNKNOWN') : 'UNKNOWN';
  const notes = [
    probe.replayPaused ? 'replay paused' : null,
    lag?.streaming === false ? `not streaming from ${primaryId}` : null,
    state === 'UNKNOWN' ? 'no primary to measure lag against' : null,
  ].filter((n): n is string => n !== null);
  return {
    ...base('replica'),
    timeline: probe.timelineId,
    lsn: probe.replayLsn,
    lagSeconds: lag?.lagSeconds ?? null,
    lagBytes: lag?.lagBytes ?? null,
    state,
    detail: notes.join('; ') || null,
  };
}

async function writerEpoch(cluster: LocalCluster, primaryId: string): Promise<StatusEpoch | null> {
  try {
    const epochs = await new PgLineageStore((id) => cluster.clientConfig(id), { connectTimeoutMs: 1_000 }).read(primaryId);
    if (epochs === null) return null;
    const head = headOf(epochs, primaryId);
    return { id: head.id, generation: head.generation, nodeId: head.nodeId, createdAt: head.createdAt };
  } catch {
    return null;
  }
}

async function workerRow(worker: LocalWorkerSpec, cwd: string, thresholds: StatusReport['thresholds'], sampledAt: string, epoch: StatusEpoch | null): Promise<StatusWorker> {
  try {
    const s = await readBufferStatus(worker, cwd);
    const confirmedEpoch = s.lineage.confirmedEpoch;
    const confirmed = epoch === null ? null : confirmedEpoch === epoch.id;
    // Behind: it confirmed an older epoch and has not converged since a failover (a fresh buffer has confirmed none).
    const behind = confirmed === false && confirmedEpoch !== null;
    const notes = [
      s.lastSyncError ? `last sync error: ${s.lastSyncError}` : s.lastSyncAt ? `last sync ${s.lastSyncAt}` : 'never synced',
      behind ? `confirmed epoch ${confirmedEpoch!.slice(0, 8)}, not the current ${epoch!.id.slice(0, 8)}: it has not re-sent since the failover` : null,
    ].filter((n): n is string => n !== null);
    const row = workerStatus({ workerId: worker.id, pendingRows: s.pendingRows, oldestPendingAgeSeconds: s.oldestPendingAgeSeconds, at: sampledAt }, thresholds.backlog, notes.join('; '));
    return { ...row, confirmedEpoch, confirmed, state: behind ? worstState([row.state, 'WARN']) : row.state };
  } catch (error) {
    return { id: worker.id, pendingRows: null, oldestPendingAgeSeconds: null, at: null, state: 'UNKNOWN', detail: `cannot read ${worker.bufferPath}: ${(error as Error).message}` };
  }
}
