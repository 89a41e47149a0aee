import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { fenceWritesSystemWide, unfenceWritesSystemWide } from '../pg/system-write-fence.js';
import { PgDatabaseProbe } from '../pg/probe.js';
import type { ClusterControl, ClusterNode, FenceOptions, FenceResult, OperationStatus, Topology } from '../ports/cluster-control.js';
import type { LocalCluster, LocalNodeInfo } from './local-cluster.js';

export interface LocalClusterControlOptions {
  /** Nodes the planner must never promote (fenced nodes are never promoted either). */
  noFailover?: readonly string[];
  /** Candidate priority per node id (lower wins on equal LSN). @default the node's index */
  priorities?: Readonly<Record<string, number>>;
  /** How long fence/promotionStatus wait for a connection. @default 2000 */
  connectTimeoutMs?: number;
  /**
   * The controller owns the nodes' processes (true locally): a node that does not answer is fenced by killing
   * every process of it (the local reboot). false plays a controller that cannot reach the host (AWS while a
   * stalled instance ignores its reboot): the node is only cut off from new connections and reported not isolated.
   * @default true
   */
  killUnreachable?: boolean;
}

type Job = { primaryId: string; outcome: 'running' | 'done' | { error: string } };

/**
 * ClusterControl over a LocalCluster: what the failover runbook does to RDS instances, done to local
 * PostgreSQL processes. fence = pg_hba reject (unless writesOnly) + read-only + terminate sessions when it
 * answers; when it does not, kill every process of it (the local reboot; see killUnreachable). A node is reported
 * isolated only when it provably cannot accept writes. repointWriter rewrites the writer file; rebuildReplica
 * follows the new primary, or re-clones when the replica cannot follow.
 */
export class LocalClusterControl implements ClusterControl {
  private readonly jobs = new Map<string, Job>();
  private readonly probe: PgDatabaseProbe;
  private readonly connectTimeoutMs: number;

  constructor(
    private readonly cluster: LocalCluster,
    private readonly options: LocalClusterControlOptions = {},
  ) {
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
    this.probe = new PgDatabaseProbe((id) => cluster.clientConfig(id), { connectTimeoutMs: this.connectTimeoutMs });
  }

  async topology(): Promise<Topology> {
    const nodes: ClusterNode[] = this.cluster.nodes().map((n, index) => ({
      id: n.id,
      // A stopped node keeps the role it is configured for (standby.signal or not).
      role: n.configuredRole,
      endpoint: `127.0.0.1:${n.port}`,
      replicationName: n.id,
      priority: this.options.priorities?.[n.id] ?? index,
      noFailover: n.fenced || (this.options.noFailover ?? []).includes(n.id),
    }));
    return { clusterId: this.cluster.clusterId, writerId: this.cluster.writerId(), nodes };
  }

  async fence(nodeId: string, options: FenceOptions = {}): Promise<FenceResult> {
    const node = this.info(nodeId);
    const isolate = !options.writesOnly;
    if (node.fenced) {
      // Already isolated by an earlier call: nothing can connect to it any more, us included.
      return { isolated: true, readOnly: readOnlyConfigured(node) || 'unreachable', sessionsTerminated: 0, detail: `${nodeId} was already fenced` };
    }
    const client = node.pid === null ? undefined : await this.tryConnect(nodeId);
    if (!client) {
      const why = node.pid === null ? `${nodeId} is not running` : `${nodeId} did not accept a connection within ${this.connectTimeoutMs} ms`;
      if (!isolate) return { isolated: false, readOnly: 'unreachable', sessionsTerminated: 0, detail: `${why}; writes could not be fenced` };
      await this.cluster.isolate(nodeId);
      if (node.pid === null) {
        return { isolated: true, readOnly: 'unreachable', sessionsTerminated: 0, detail: `${why}; isolated (pg_hba rejects every connection, never restarted as primary)` };
      }
      // Alive but silent (stalled, overloaded): its open sessions could still commit. Only killing it makes it safe.
      if (this.options.killUnreachable === false) {
        return {
          isolated: false,
          readOnly: 'unreachable',
          sessionsTerminated: 0,
          detail: `${why}; new connections are refused (pg_hba), but its processes could not be stopped and its open sessions survive`,
        };
      }
      await this.cluster.killProcesses(nodeId);
      return {
        isolated: true,
        readOnly: 'unreachable',
        sessionsTerminated: 0,
        detail: `${why}; killed every process of it (the local reboot) and isolated it (pg_hba rejects every connection, never restarted as primary)`,
      };
    }
    try {
      // Isolate first: the reload fenceWritesSystemWide waits for then also loads the new pg_hba.conf, before sessions are cut.
      if (isolate) await this.cluster.isolate(nodeId);
      const fenced = await fenceWritesSystemWide(client.pg);
      return { isolated: isolate, readOnly: true, sessionsTerminated: fenced.sessionsTerminated, lsn: fenced.lsn };
    } catch (error) {
      return { isolated: isolate, readOnly: false, sessionsTerminated: 0, detail: `${nodeId}: setting read-only failed: ${(error as Error).message}` };
    } finally {
      await client.close();
    }
  }

  async unfence(nodeId: string): Promise<void> {
    const node = this.info(nodeId);
    if (node.fenced) throw new Error(`${nodeId} is isolated, not only write-fenced: it cannot be unfenced; rebuild it as a replica`);
    const client = await this.tryConnect(nodeId);
    if (!client) throw new Error(`${nodeId} is not reachable: cannot make it writable again`);
    try {
      await unfenceWritesSystemWide(client.pg);
    } finally {
      await client.close();
    }
  }

  async promote(nodeId: string): Promise<void> {
    await this.cluster.promote(nodeId);
  }

  async promotionStatus(nodeId: string): Promise<OperationStatus> {
    const node = this.info(nodeId);
    if (node.pid === null) return { state: 'failed', detail: `${nodeId} is not running` };
    const probe = await this.probe.probe(nodeId);
    if (!probe.reachable) return { state: 'pending', detail: `${nodeId} unreachable: ${probe.error}` };
    if (probe.inRecovery) return { state: 'pending', detail: `${nodeId} is still in recovery` };
    if (!probe.acceptsWrites) return { state: 'pending', detail: `${nodeId} is out of recovery but read-only` };
    return { state: 'done', detail: `${nodeId} accepts writes on timeline ${probe.timelineId}` };
  }

  async repointWriter(nodeId: string): Promise<void> {
    if (this.info(nodeId).fenced) throw new Error(`${nodeId} is fenced: the writer must not point at it`);
    await this.cluster.setWriter(nodeId);
  }

  async rebuildReplica(replicaId: string, primaryId: string): Promise<{ readonly nodeId: string }> {
    this.info(replicaId);
    this.info(primaryId);
    if (replicaId === primaryId) throw new Error(`rebuildReplica: replica and primary are both ${replicaId}`);
    const existing = this.jobs.get(replicaId);
    if (existing?.outcome === 'running' && existing.primaryId === primaryId) return { nodeId: replicaId };
    if (existing?.outcome === 'running') throw new Error(`${replicaId} is being rebuilt from ${existing.primaryId} already`);
    const job: Job = { primaryId, outcome: 'running' };
    this.jobs.set(replicaId, job);
    // Runs in the background; rebuildStatus reports it. repoint follows the new primary, re-cloning when it cannot.
    this.cluster.repoint(replicaId, primaryId).then(
      () => (job.outcome = 'done'),
      (error: Error) => (job.outcome = { error: error.message }),
    );
    return { nodeId: replicaId };
  }

  async rebuildStatus(nodeId: string): Promise<OperationStatus> {
    const job = this.jobs.get(nodeId);
    if (job?.outcome === 'running') return { state: 'pending', detail: `${nodeId} is being rebuilt from ${job.primaryId}` };
    if (job && typeof job.outcome === 'object') return { state: 'failed', detail: job.outcome.error };
    // Done, or started by an earlier process: judge by what the primary sees.
    const primaryId = job?.primaryId ?? this.cluster.primaryId();
    const primary = await this.probe.probe(primaryId);
    if (!primary.reachable) return { state: 'pending', detail: `${primaryId} unreachable: ${primary.error}` };
    const peer = primary.replication.find((r) => r.applicationName === nodeId);
    if (peer?.state === 'streaming') return { state: 'done', detail: `${nodeId} streams from ${primaryId}` };
    const seen = peer ? `state ${peer.state}` : 'not connected';
    return job
      ? { state: 'failed', detail: `${nodeId} was rebuilt but does not stream from ${primaryId} (${seen})` }
      : { state: 'failed', detail: `no rebuild of ${nodeId} in progress and it does not stream from ${primaryId} (${seen})` };
  }

  private info(nodeId: string): LocalNodeInfo {
    const node = this.cluster.nodes().find((n) => n.id === nodeId);
    if (!node) throw new Error(`unknown node '${nodeId}': this cluster has ${this.cluster.nodes().map((n) => n.id).join(', ')}`);
    return node;
  }

  private async tryConnect(nodeId: string): Promise<{ pg: pg.Client; close: () => Promise<void> } | undefined> {
    const client = new pg.Client({ ...this.cluster.clientConfig(nodeId), connectionTimeoutMillis: this.connectTimeoutMs, statement_timeout: 15_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch {
      return undefined;
    }
    return { pg: client, close: () => client.end().catch(() => undefined) };
  }
}

/** Whether ALTER SYSTEM left default_transaction_read_only on (postgresql.auto.conf). */
function readOnlyConfigured(node: LocalNodeInfo): boolean {
  try {
    return /^default_transaction_read_only\s*=\s*'on'/m.test(readFileSync(path.join(node.dataDir, 'postgresql.auto.conf'), 'utf8'));
  } catch {
    return false;
  }
}
